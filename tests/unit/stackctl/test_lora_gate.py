"""`suiqa lora load --gate` (stackctl/lora_cli.py): what the gate does with the canary's verdict — keep the
adapter on a pass, unload it on a fail (exit 1) and when the gate itself cannot run. The real LoraClient talks to
a vLLM double of the two runtime-adapter routes (httpx.MockTransport: the same JSON bodies vLLM takes and the
same 200s); the canary is replaced by its verdict. The real server and the real canary:
tests/integration/test_lora_runtime.py."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from serving.config import PROFILES_DIR
from serving.lora import LoraClient
from stackctl import lora_cli
from stackctl.cli import app
from tests.unit.serving.helpers import adapter_folder, model_folder


class VLLMAdapterRoutes:
    """vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter: the names loaded, every call recorded."""

    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.calls.append(f"{request.url.path} {body['lora_name']}")
        if request.url.path == "/v1/load_lora_adapter" and set(body) == {"lora_name", "lora_path"}:
            self.loaded.append(body["lora_name"])
            return httpx.Response(200, text=f"Success: LoRA adapter '{body['lora_name']}' added successfully.")
        if request.url.path == "/v1/unload_lora_adapter" and body["lora_name"] in self.loaded:
            self.loaded.remove(body["lora_name"])
            return httpx.Response(200, text="Success")
        return httpx.Response(404, json={"error": {"message": f"unexpected {request.url.path} {body}"}})


@pytest.fixture
def vllm(monkeypatch):
    routes = VLLMAdapterRoutes()

    class Client(LoraClient):
        def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 120.0) -> None:
            super().__init__(base_url, api_key, timeout_s)
            self.http = httpx.Client(base_url=self.root, transport=httpx.MockTransport(routes))

    monkeypatch.setattr("serving.lora.LoraClient", Client)
    return routes


@pytest.fixture
def target(tmp_path):
    base = model_folder(tmp_path / "base")
    spec = yaml.safe_load((PROFILES_DIR / "cpu-tiny.yaml").read_text(encoding="utf-8"))
    spec.update(name="lora", model=str(base), trust_remote_code=False, runtime_lora=True, max_lora_rank=8)
    profile = tmp_path / "lora.yaml"
    profile.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return ["sui", str(adapter_folder(tmp_path / "adapter", base)), "--profile", str(profile), "--gate"]


def _verdict(monkeypatch, failures=None, raises=None):
    seen = {}

    def run_gate(agent_settings, thresholds, canary_set):
        seen["adapter"], seen["questions"] = agent_settings.domain_llm.adapter, len(canary_set)
        if raises is not None:
            raise raises
        return failures or []

    monkeypatch.setattr(lora_cli, "_run_gate", run_gate)
    return seen


def test_a_passing_canary_keeps_the_adapter(vllm, target, monkeypatch):
    seen = _verdict(monkeypatch)
    result = CliRunner().invoke(app, ["lora", "load", *target])
    assert result.exit_code == 0, result.output
    assert "gated: the canary passes with domain_llm.adapter=sui" in result.output
    assert vllm.loaded == ["sui"] and vllm.calls == ["/v1/load_lora_adapter sui"]
    assert seen["adapter"] == "sui" and seen["questions"] > 0  # the pipeline asked for the new adapter


def test_a_failing_canary_unloads_the_adapter_and_exits_1(vllm, target, monkeypatch):
    _verdict(monkeypatch, failures=["grounding 0.10 < 0.30"])
    result = CliRunner().invoke(app, ["lora", "load", *target])
    assert result.exit_code == 1
    assert "refused: the canary fails with adapter sui (grounding 0.10 < 0.30); unloaded it again" in result.output
    assert vllm.loaded == [] and vllm.calls == ["/v1/load_lora_adapter sui", "/v1/unload_lora_adapter sui"]


def test_a_gate_that_cannot_run_unloads_the_adapter(vllm, target, monkeypatch):
    _verdict(monkeypatch, raises=RuntimeError("the agent tier is down"))
    result = CliRunner().invoke(app, ["lora", "load", *target])
    assert result.exit_code != 0 and isinstance(result.exception, RuntimeError)
    assert vllm.loaded == [] and vllm.calls[-1] == "/v1/unload_lora_adapter sui"


def test_without_the_gate_nothing_is_run(vllm, target, monkeypatch):
    seen = _verdict(monkeypatch, raises=AssertionError("the gate ran"))
    result = CliRunner().invoke(app, ["lora", "load", *target[:-1]])
    assert result.exit_code == 0 and "gated" not in result.output and seen == {}
    assert vllm.loaded == ["sui"]


def test_the_gate_is_for_the_domain_tier(vllm, target, monkeypatch):
    _verdict(monkeypatch)
    result = CliRunner().invoke(app, ["lora", "load", *target, "--role", "agent"])
    assert result.exit_code != 0 and vllm.calls == []

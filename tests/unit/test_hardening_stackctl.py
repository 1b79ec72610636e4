"""`suiqa restart` and the stack's run state without starting servers: clear one-line errors, and the tier is
rebuilt from the settings the stack recorded (not from the profile files or the current environment)."""

from __future__ import annotations

import json

import pytest

from suiqa.errors import SuiqaError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SUIQA_HOME", str(tmp_path))
    return tmp_path


def test_restart_without_a_stack_or_without_that_tier(home):
    from stackctl.stack import restart

    with pytest.raises(SuiqaError, match="no stack is up"):
        restart("domain")
    (home / "run").mkdir(exist_ok=True)
    (home / "run" / "stack.json").write_text(json.dumps({"profile": "cpu-tiny-shared", "servers": {"domain": {}}}))
    with pytest.raises(SuiqaError, match="serves both roles"):
        restart("agent")


def test_restart_uses_the_recorded_settings(home, monkeypatch):
    from serving.config import load_profile
    from stackctl import stack

    recorded = load_profile("cpu-tiny", role="domain", port=18123, max_model_len=4096,
                            served_model_name=["internlm2-chat-sui", "qwen-agent"])
    (home / "run").mkdir(exist_ok=True)
    (home / "run" / "stack.json").write_text(json.dumps(
        {"profile": "cpu-tiny-shared", "servers": {"domain": recorded.model_dump(mode="json", exclude={"api_key"})}}))
    (home / "run" / "vllm-domain-18123.json").write_text(json.dumps({"pgid": 999999999, "role": "domain"}))
    started = []

    class FakeServer:  # the launcher itself is tested with real vLLM in tests/integration
        def __init__(self, profile):
            self.profile = profile

        def start(self):
            started.append(self.profile)
            return self

        def wait_ready(self):
            pass

    monkeypatch.setattr(stack, "VLLMServer", FakeServer)
    import suiqa.net

    monkeypatch.setattr(suiqa.net, "stop_process_group", lambda pgid, grace_s: started.append(pgid))
    monkeypatch.setenv("SUIQA_DOMAIN_PORT", "9999")  # the environment does not move a running stack's tier
    monkeypatch.setenv("SUIQA_DOMAIN_API_KEY", "sk-domain-0123456789abcdef")
    assert stack.restart("domain") == "http://127.0.0.1:18123"
    pgid, profile = started
    assert pgid == 999999999 and not (home / "run" / "vllm-domain-18123.json").exists()
    assert profile.port == 18123 and profile.served_model_name == ["internlm2-chat-sui", "qwen-agent"]
    assert profile.max_model_len == 4096 and profile.api_key.get_secret_value() == "sk-domain-0123456789abcdef"

"""`suiqa restart` and the stack's run state without starting servers: clear one-line errors, and the tier
is rebuilt from the settings the stack recorded (not from the profile files or the current environment);
its key comes from SUIQA_<ROLE>_API_KEY and must be the one it started with (issue #25: a shell without it
restarted the tier open), and no key is ever written to the run state."""

from __future__ import annotations

import json

import pytest

from stackctl import tier_keys
from suiqa.errors import SuiqaError

DOMAIN_KEY = "sk-domain-0123456789abcdef"
AGENT_KEY = "sk-agent-0123456789abcdef"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SUIQA_HOME", str(tmp_path))
    monkeypatch.setattr(tier_keys, "ITERATIONS", 1000)  # the real count costs 0.14 s a hash
    for role in ("DOMAIN", "AGENT"):
        monkeypatch.delenv(f"SUIQA_{role}_API_KEY", raising=False)
    return tmp_path


class FakeServer:  # the launcher itself is tested with real vLLM in tests/integration
    started: list = []

    def __init__(self, profile):
        self.profile = profile

    def start(self):
        FakeServer.started.append(self.profile)
        return self

    def wait_ready(self):
        pass


@pytest.fixture
def fake_servers(monkeypatch):
    from stackctl import stack

    FakeServer.started = []
    monkeypatch.setattr(stack, "VLLMServer", FakeServer)
    monkeypatch.setattr(stack, "stop_recorded", lambda path, **kw: FakeServer.started.append(path.name))
    return FakeServer.started


def _recorded_stack(home, role: str, key: str | None, port: int = 18124) -> None:
    """A run state as `suiqa up` writes it for one tier started with ``key`` (None: without one)."""
    from pydantic import SecretStr

    from serving.config import load_profile

    profile = load_profile("cpu-tiny-agent" if role == "agent" else "cpu-tiny", role=role, port=port)
    (home / "run").mkdir(exist_ok=True)
    (home / "run" / "stack.json").write_text(json.dumps(
        {"profile": "cpu-tiny", "servers": {role: profile.model_dump(mode="json", exclude={"api_key"})},
         "api_keys": {role: tier_keys.record(role, SecretStr(key) if key else None)}}))


def test_restart_without_a_stack_or_without_that_tier(home):
    from stackctl.stack import restart

    with pytest.raises(SuiqaError, match="no stack is up"):
        restart("domain")
    (home / "run").mkdir(exist_ok=True)
    (home / "run" / "stack.json").write_text(json.dumps({"profile": "cpu-tiny-shared", "servers": {"domain": {}}}))
    with pytest.raises(SuiqaError, match="serves both roles"):
        restart("agent")


def test_restart_uses_the_recorded_settings(home, monkeypatch):
    from pydantic import SecretStr

    from serving.config import load_profile
    from stackctl import stack

    recorded = load_profile("cpu-tiny", role="domain", port=18123, max_model_len=4096,
                            served_model_name=["internlm2-chat-sui", "qwen-agent"])
    (home / "run").mkdir(exist_ok=True)
    (home / "run" / "stack.json").write_text(json.dumps(
        {"profile": "cpu-tiny-shared",
         "servers": {"domain": recorded.model_dump(mode="json", exclude={"api_key"})},
         "api_keys": {"domain": tier_keys.record("domain", SecretStr(DOMAIN_KEY))}}))
    (home / "run" / "vllm-domain-18123.json").write_text(json.dumps({"pgid": 999999999, "role": "domain"}))
    started = []
    monkeypatch.setattr(stack, "VLLMServer", FakeServer)
    FakeServer.started = started
    import suiqa.net

    monkeypatch.setattr(suiqa.net, "stop_process_group", lambda pgid, grace_s: started.append(pgid))
    monkeypatch.setenv("SUIQA_DOMAIN_PORT", "9999")  # the environment does not move a running stack's tier
    monkeypatch.setenv("SUIQA_DOMAIN_API_KEY", DOMAIN_KEY)
    assert stack.restart("domain") == "http://127.0.0.1:18123"
    pgid, profile = started
    assert pgid == 999999999 and not (home / "run" / "vllm-domain-18123.json").exists()
    assert profile.port == 18123 and profile.served_model_name == ["internlm2-chat-sui", "qwen-agent"]
    assert profile.max_model_len == 4096 and profile.api_key.get_secret_value() == DOMAIN_KEY


def test_restart_without_the_key_the_tier_started_with_is_refused(home, fake_servers, monkeypatch):
    """Issue #25, item 1: the agent tier came back with no key from a shell without SUIQA_AGENT_API_KEY."""
    from stackctl import stack

    _recorded_stack(home, "agent", AGENT_KEY)
    with pytest.raises(SuiqaError, match="started with an API key: set SUIQA_AGENT_API_KEY") as refused:
        stack.restart("agent")
    assert "\n" not in str(refused.value) and fake_servers == []  # one line, and nothing stopped or started
    monkeypatch.setenv("SUIQA_AGENT_API_KEY", "")  # empty is no key
    with pytest.raises(SuiqaError, match="started with an API key"):
        stack.restart("agent")
    monkeypatch.setenv("SUIQA_AGENT_API_KEY", "sk-another-0123456789abcdef")
    with pytest.raises(SuiqaError, match="is not the key the agent tier was started with"):
        stack.restart("agent")
    assert fake_servers == []
    monkeypatch.setenv("SUIQA_AGENT_API_KEY", AGENT_KEY)
    assert stack.restart("agent") == "http://127.0.0.1:18124"
    stopped, profile = fake_servers
    assert stopped == "vllm-agent-18124.json" and profile.api_key.get_secret_value() == AGENT_KEY


def test_restart_of_an_open_tier_stays_open_and_refuses_a_new_key(home, fake_servers, monkeypatch):
    from stackctl import stack

    _recorded_stack(home, "domain", None)
    monkeypatch.setenv("SUIQA_DOMAIN_API_KEY", DOMAIN_KEY)  # the pipeline sends no key to this tier
    refused = "started without an API key, but this shell sets SUIQA_DOMAIN_API_KEY"
    with pytest.raises(SuiqaError, match=refused):
        stack.restart("domain")
    assert fake_servers == []
    monkeypatch.delenv("SUIQA_DOMAIN_API_KEY")
    stack.restart("domain")
    assert fake_servers[-1].api_key is None


def test_a_run_state_from_before_the_key_record_restarts_only_open(home, fake_servers, monkeypatch):
    """A state without ``api_keys`` (written before issue #25) is read as 'no key': a restart with a key in
    the environment is refused rather than guessed."""
    from stackctl import stack

    _recorded_stack(home, "domain", None)
    state = json.loads((home / "run" / "stack.json").read_text())
    del state["api_keys"]
    (home / "run" / "stack.json").write_text(json.dumps(state))
    monkeypatch.setenv("SUIQA_DOMAIN_API_KEY", DOMAIN_KEY)
    with pytest.raises(SuiqaError, match="started without an API key"):
        stack.restart("domain")


def test_the_key_record_is_salted_and_checks_only_the_same_key():
    from pydantic import SecretStr

    first, second = (tier_keys.record("agent", SecretStr(AGENT_KEY)) for _ in range(2))
    assert first["env"] == "SUIQA_AGENT_API_KEY" and first["pbkdf2_sha256"] != second["pbkdf2_sha256"]
    iterations, salt, digest = first["pbkdf2_sha256"].split("$")
    assert int(iterations) == tier_keys.ITERATIONS and len(bytes.fromhex(salt)) == 16 and len(digest) == 64
    assert AGENT_KEY not in json.dumps(first)
    assert tier_keys.matches(AGENT_KEY, first) and tier_keys.matches(AGENT_KEY, second)
    assert not tier_keys.matches(AGENT_KEY + "x", first) and not tier_keys.matches(AGENT_KEY[:-1], first)
    assert not tier_keys.matches(AGENT_KEY, {})
    assert not tier_keys.matches(AGENT_KEY, {"pbkdf2_sha256": "1$zz$00"})
    assert tier_keys.record("agent", None) is None and tier_keys.record("agent", SecretStr("")) is None


def test_up_never_writes_a_key_to_the_run_state_and_restart_reads_it_back(home, fake_servers, monkeypatch):
    """`suiqa up` with both tiers keyed (the servers, Ray and Serve faked): no file under the run directory
    holds either key at any point, and `suiqa restart` of each tier gets its key back from the environment
    alone."""
    from stackctl import stack

    monkeypatch.setenv("SUIQA_DOMAIN_API_KEY", DOMAIN_KEY)
    monkeypatch.setenv("SUIQA_AGENT_API_KEY", AGENT_KEY)
    seen: list[str] = []

    def snapshot(*_args, **_kwargs):
        seen.extend(p.read_text() for p in (home / "run").rglob("*") if p.is_file())
        return "127.0.0.1:1"

    monkeypatch.setattr(stack, "port_in_use", lambda host, port: False)  # the other stacks on this machine
    monkeypatch.setattr(stack, "start_ray", snapshot)
    monkeypatch.setattr(stack, "deploy_app", snapshot)
    monkeypatch.setattr(stack, "wait_ready", snapshot)
    from react_tier.knowledge import KnowledgeBase

    monkeypatch.setattr(KnowledgeBase, "load", staticmethod(lambda *a, **k: None))
    urls = stack.up(stack.load_stack("cpu-tiny", build_tiny_models=False))
    snapshot()
    state = json.loads((home / "run" / "stack.json").read_text())
    assert urls["vllm_agent"] == state["urls"]["vllm_agent"] and len(seen) >= 4
    # the tiers got their keys
    assert [p.api_key.get_secret_value() for p in fake_servers] == [DOMAIN_KEY, AGENT_KEY]
    assert not [text for text in seen if DOMAIN_KEY in text or AGENT_KEY in text]
    assert all("api_key" not in tier for tier in state["servers"].values())
    assert {role: record["env"] for role, record in state["api_keys"].items()} == \
        {"domain": "SUIQA_DOMAIN_API_KEY", "agent": "SUIQA_AGENT_API_KEY"}
    for role, key in (("domain", DOMAIN_KEY), ("agent", AGENT_KEY)):
        stack.restart(role)
        assert fake_servers[-1].api_key.get_secret_value() == key and fake_servers[-1].role == role
    monkeypatch.delenv("SUIQA_AGENT_API_KEY")
    with pytest.raises(SuiqaError, match="set SUIQA_AGENT_API_KEY"):
        stack.restart("agent")

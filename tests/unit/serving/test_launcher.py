"""The launcher's run records: one per server (role and port), each removed only by its own server, and `suiqa down`
stops every recorded server. With one record per role a test's second domain server overwrote the stack's record
and then removed it, so `suiqa down` left the stack's vLLM running (seen after full `make test` runs)."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from serving.config import load_profile
from serving.launcher import VLLMServer, state_file


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SUIQA_HOME", str(tmp_path))
    (tmp_path / "run").mkdir()
    return tmp_path


def _running(port: int) -> VLLMServer:
    server = VLLMServer(load_profile("cpu-tiny", port=port))
    server.process = subprocess.Popen(["sleep", "60"], start_new_session=True)  # stands in for vLLM's process
    threading.Thread(target=server.process.wait, daemon=True).start()  # reaped at once, as init reaps vLLM
    server._write_state()
    return server


def test_two_servers_of_one_role_keep_their_own_records(home):
    stack_server, other = _running(18001), _running(18002)
    try:
        assert stack_server.state_file == home / "run" / "vllm-domain-18001.json" == state_file(stack_server.profile)
        assert json.loads(stack_server.state_file.read_text())["pid"] == stack_server.process.pid
        other.stop(grace_s=1)
        assert stack_server.state_file.exists() and not other.state_file.exists()
    finally:
        stack_server.stop(grace_s=1)
    assert not stack_server.state_file.exists()


def test_a_server_never_removes_a_record_that_is_not_its_own(home):
    first = _running(18003)
    second = _running(18003)  # same role and port: the second start overwrote the record (a restart)
    try:
        first.stop(grace_s=1)
        assert json.loads(second.state_file.read_text())["pid"] == second.process.pid
    finally:
        second.stop(grace_s=1)


def test_down_stops_every_recorded_server(home):
    from stackctl import stack

    servers = [_running(18004), _running(18005)]
    stopped = stack.down()
    assert sorted(stopped) == ["vllm domain", "vllm domain"]
    for server in servers:
        assert server.process.wait(timeout=10) is not None and not server.state_file.exists()



def test_stopping_one_roles_servers_keeps_the_others(home):
    """The GPU bench restarts the agent tier (both of its servers) and keeps the domain tier running."""
    from serving.launcher import stop_vllm_servers

    servers = {port: _running(port) for port in (8000,)}
    for port in (8001, 8002):
        server = VLLMServer(load_profile("cpu-tiny-agent", port=port))
        server.process = subprocess.Popen(["sleep", "60"], start_new_session=True)
        threading.Thread(target=server.process.wait, daemon=True).start()
        server._write_state()
        servers[port] = server
    stopped = stop_vllm_servers("agent")
    assert sorted(info["url"] for info in stopped) == ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
    assert servers[8001].process.wait(5) is not None and servers[8002].process.wait(5) is not None
    assert servers[8000].process.poll() is None
    assert sorted(p.name for p in (home / "run").glob("vllm-*.json")) == ["vllm-domain-8000.json"]
    assert [info["role"] for info in stop_vllm_servers()] == ["domain"]
    assert servers[8000].process.wait(5) is not None

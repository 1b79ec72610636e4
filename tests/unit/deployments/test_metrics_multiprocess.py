"""Multiprocess mode as the replicas use it: several processes write to one directory, ONE endpoint per node serves
the sum with exact _sum values; a second exporter cannot bind the port and takes over when the first closes; the
live gauge of a killed process is pruned. Each case runs in fresh interpreters (multiprocess mode is per process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port

REPO = Path(__file__).resolve().parents[3]

WRITER = textwrap.dedent("""
    import os, sys, time
    from deployments.metrics import PipelineMetrics
    from deployments.node_exporter import use_multiprocess
    use_multiprocess(sys.argv[1])
    m = PipelineMetrics()
    n = int(sys.argv[2])
    for i in range(n):
        m.requests.labels("200", "false").inc()
        m.e2e.labels("false").observe(0.001 * (i % 100))   # exact sum per process: n/100 * 4.95
    m.in_flight.inc()
    if sys.argv[3] == "hold":   # stays alive with one request in flight until killed
        print("ready", flush=True)
        time.sleep(60)
""")

EXPORTER = textwrap.dedent("""
    import asyncio, sys
    from deployments.node_exporter import NodeMetricsExporter, use_multiprocess
    use_multiprocess(sys.argv[1])

    async def main():
        exporter = NodeMetricsExporter("127.0.0.1", int(sys.argv[2]), retry_s=0.2).start()
        for _ in range(int(sys.argv[4])):  # tenths of a second to wait for the port
            await asyncio.sleep(0.1)
            if exporter.serving:
                break
        print("serving" if exporter.serving else "waiting", flush=True)
        await asyncio.sleep(float(sys.argv[3]))
        exporter.close()

    asyncio.run(main())
""")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _scrape(port: int) -> dict[tuple, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_one_endpoint_per_node_sums_every_process_exactly(tmp_path):
    directory = tmp_path / "prom"
    writers = [subprocess.run([sys.executable, "-c", WRITER, str(directory), "1000", "exit"], check=False, env=_env(),
                              capture_output=True, text=True, timeout=60) for _ in range(3)]
    assert all(w.returncode == 0 for w in writers), writers[0].stderr
    holder = subprocess.Popen([sys.executable, "-c", WRITER, str(directory), "10", "hold"], env=_env(),
                              stdout=subprocess.PIPE, text=True)
    port = free_port()
    first = second = None
    try:
        assert holder.stdout.readline().strip() == "ready"
        first = subprocess.Popen([sys.executable, "-c", EXPORTER, str(directory), str(port), "5", "50"], env=_env(),
                                 stdout=subprocess.PIPE, text=True)
        assert first.stdout.readline().strip() == "serving"
        second = subprocess.Popen([sys.executable, "-c", EXPORTER, str(directory), str(port), "30", "10"], env=_env(),
                                  stdout=subprocess.PIPE, text=True)
        assert second.stdout.readline().strip() == "waiting"   # the port is taken: it only writes

        started = time.perf_counter()
        s = _scrape(port)
        scrape_ms = (time.perf_counter() - started) * 1000
        assert s[("sui_requests_total", (("status", "200"), ("stream", "false")))] == 3010
        assert s[("sui_request_e2e_seconds_count", (("stream", "false"),))] == 3010
        expected = 3 * 10 * 4.95 + sum(0.001 * i for i in range(10))
        assert abs(s[("sui_request_e2e_seconds_sum", (("stream", "false"),))] - expected) < 1e-6
        # the three writers exited without saying so; the holder is alive: its in-flight request only
        # (pruned when the exporter binds; the writers' gauges are gone)
        assert s[("sui_requests_in_flight", ())] == 1
        print(f"scrape of 5 processes' files: {scrape_ms:.1f} ms")

        first.wait(timeout=20)                                  # the serving exporter goes away ...
        deadline = time.monotonic() + 10
        while True:                                             # ... and the other one takes the port over
            try:
                if _scrape(port)[("sui_requests_total", (("status", "200"), ("stream", "false")))] == 3010:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "no exporter took the port over"
            time.sleep(0.2)
        holder.kill()
        holder.wait()
        time.sleep(0.5)                                         # next retry prunes the killed process's gauge
        assert _scrape(port).get(("sui_requests_in_flight", ()), 0) == 0  # no live process: no series
    finally:
        for proc in (holder, first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

"""A real Prometheus (Debian's binary) started by PrometheusServer scrapes a tiny prometheus-client HTTP server
exporting the pipeline's series; the shipped recording rules then have values (issue #14, acceptance 1 in small)."""

from __future__ import annotations

import math
import os
import shutil
import threading
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from monitoring.prometheus_server import DEFAULT_BINARY, PrometheusError, PrometheusServer, scrape_config
from tests.support import free_port

pytestmark = pytest.mark.integration


def _wait_for(server: PrometheusServer, expr: str, timeout_s: float = 40.0) -> list[dict]:
    """Until the query returns a finite value (a rate over a single sample is NaN at first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = server.query(expr)
        if result and all(math.isfinite(float(r["value"][1])) for r in result):
            return result
        time.sleep(0.5)
    raise AssertionError(f"{expr} has no value after {timeout_s} s")


@pytest.fixture
def exporter():
    registry = CollectorRegistry()
    requests = Counter("sui_requests", "requests", ("status", "stream"), registry=registry)
    ttft = Histogram("sui_request_ttft_seconds", "ttft", ("stream",), buckets=(0.5, 1, 5), registry=registry)
    port = free_port()
    http_server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield port, requests, ttft
    http_server.shutdown()
    thread.join(5)


def test_real_prometheus_scrapes_and_evaluates_rules(tmp_path, exporter):
    if shutil.which(DEFAULT_BINARY) is None:
        pytest.fail("Debian's prometheus is not installed (scripts/system_deps.sh)")
    port, requests, ttft = exporter
    config = scrape_config({"sui-pipeline": [f"127.0.0.1:{port}"]}, scrape_interval="1s")
    stop = threading.Event()

    def traffic() -> None:  # 5 answers and 1 failure per 0.5 s until the test is done
        while not stop.wait(0.5):
            requests.labels("200", "true").inc(5)
            requests.labels("503", "true").inc(1)
            ttft.labels("true").observe(0.7)

    sender = threading.Thread(target=traffic, daemon=True)
    with PrometheusServer(tmp_path / "prom", free_port(), config=config) as server:
        sender.start()
        up = _wait_for(server, 'up{job="sui-pipeline"}')
        assert up[0]["value"][1] == "1"
        raw = _wait_for(server, 'sui_requests_total{job="sui-pipeline", status="503"}')
        assert float(raw[0]["value"][1]) >= 1
        ratio = _wait_for(server, "sui:request_errors:ratio_rate5m")  # a recording rule from rules.yml
        assert abs(float(ratio[0]["value"][1]) - 1 / 6) < 0.02  # 1 of every 6 responses is a 503
        p50 = _wait_for(server, "sui:request_ttft_seconds:p50_5m")
        assert 0.5 <= float(p50[0]["value"][1]) <= 1
        pid = server.process.pid
    stop.set()
    sender.join(5)
    with pytest.raises(ProcessLookupError):  # stopped with its process group
        os.killpg(pid, 0)
    # the next stack's Prometheus (same directory) starts empty: no series of this one answers its queries
    with PrometheusServer(tmp_path / "prom", free_port(), config=scrape_config({})) as server:
        body = httpx.get(f"{server.url}/api/v1/query", params={"query": "sui_requests_total"}, timeout=10).json()
        assert body["status"] == "success" and body["data"]["result"] == []


def test_busy_port_is_one_line_error(tmp_path, exporter):
    port = exporter[0]  # taken by the exporter
    with pytest.raises(PrometheusError, match="already in use"):
        PrometheusServer(tmp_path, port, {}).start()

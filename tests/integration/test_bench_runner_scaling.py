"""The Locust runner with several worker processes against a small stdlib SSE server that enforces the same
stream contract as vLLM (``data: {chunk}`` lines, a usage chunk, ``data: [DONE]``): records from every worker are
collected, and a step in which every request failed is reported as FAILED with its Locust log tail."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from benchmarks.report import online_table
from benchmarks.runner import LoadSpec, auto_processes, run_step, step_line
from benchmarks.stats import SLO

pytestmark = pytest.mark.integration


class _Handler(BaseHTTPRequestHandler):
    status = 200
    headers_out: dict[str, str] = {}

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.status != 200:
            self.send_response(self.status)
            self.send_header("Content-Type", "application/json")
            for name, value in self.headers_out.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "overloaded", "code": 503}}')
            return
        n = body["max_tokens"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(n):
            chunk = {"choices": [{"index": 0, "text": f"t{i}"}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": n}}
        self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
        self.close_connection = True


def _server(status: int, headers: dict[str, str] | None = None):
    handler = type("H", (_Handler,), {"status": status, "headers_out": headers or {}})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def test_auto_processes():
    assert auto_processes(1, cpus=16) == 1 and auto_processes(128, cpus=16) == 1
    assert auto_processes(512, cpus=16) == 4 and auto_processes(1024, cpus=16) == 8
    assert auto_processes(1024, cpus=2) == 1


def test_records_from_every_worker_process(tmp_path):
    srv, url = _server(200)
    try:
        spec = LoadSpec(host=url, model="m", api="completions", max_tokens="4", stop_timeout_s=10, processes=2)
        step = run_step(spec, users=4, duration_s=3, work_dir=tmp_path, slo=SLO())
    finally:
        srv.shutdown()
    assert step["status"] == "ok" and step["processes"] == 2 and step["failures"] == 0
    assert step["requests"] > 4 and step["output_tokens"]["p50"] == 4
    assert len(list(tmp_path.glob("records-u4.jsonl.*"))) == 2  # one file per worker, written as requests finish


def test_step_with_only_failures_is_failed_with_log_tail(tmp_path):
    srv, url = _server(503)
    try:
        spec = LoadSpec(host=url, model="m", api="completions", max_tokens="4", stop_timeout_s=10, processes=2)
        step = run_step(spec, users=2, duration_s=2, work_dir=tmp_path, slo=SLO())
    finally:
        srv.shutdown()
    assert step["status"] == "FAILED" and step["requests"] == step["failures"] > 0
    assert any("HTTP 503" in err for err in step["errors"]) and step["locust_log_tail"]
    assert "FAILED" in step_line(step)
    row = online_table([{"name": "x", "steps": [step]}])[-1]
    assert "**FAILED**" in row and "HTTP 503" in row


@pytest.mark.parametrize("honour", [True, False])
def test_a_refused_user_waits_the_retry_after_unless_told_not_to(tmp_path, honour):
    """A 429 with Retry-After: 2 holds each of 2 users to ~2 requests in a 3 s step (a real client waits, as the
    openai SDK does); told not to honour it, they retry at once (dozens of requests)."""
    srv, url = _server(429, {"Retry-After": "2"})
    try:
        spec = LoadSpec(host=url, model="m", api="completions", max_tokens="4", stop_timeout_s=5, processes=1,
                        honour_retry_after=honour)
        step = run_step(spec, users=2, duration_s=3, work_dir=tmp_path, slo=SLO())
    finally:
        srv.shutdown()
    assert step["requests"] == step["failures"] > 0 and any("HTTP 429" in err for err in step["errors"])
    if honour:
        assert step["requests"] <= 6, step["requests"]  # 2 users x (1 at 0 s + 1 at 2 s), + 1 each of slack
    else:
        assert step["requests"] > 20, step["requests"]

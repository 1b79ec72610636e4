"""Locust user for OpenAI-compatible servers (vLLM, the HF baseline, the Ray Serve pipeline): streamed requests.

    BENCH_MODEL=internlm2-chat-sui python -m locust -f benchmarks/locustfile.py --headless -u 8 -r 8 -t 30s \
        --host http://127.0.0.1:8000 --stop-timeout 60

Each request is one streamed ``/v1/chat/completions`` (or ``/v1/completions``) call with
``stream_options.include_usage``; per request it fires Locust request events of type ``LLM`` named ``TTFT``,
``TPOT``, ``E2E`` (times in ms) and ``output_tokens`` (the "response time" is the token count), so Locust's own
table shows them. The HTTP call itself appears as ``POST <path>`` with the time to the response headers.

Configuration (environment; the benchmark runner sets them):
  BENCH_MODEL        model name to send (default: the first of GET /v1/models)
  BENCH_API          chat | completions (default chat)
  BENCH_PROMPTS      prompt file, one a line (default benchmarks/data/sui_questions.txt)
  BENCH_MAX_TOKENS   N or MIN:MAX sampled uniformly per request (default 128)
  BENCH_IGNORE_EOS   1 sends vLLM's ignore_eos so every answer has max_tokens tokens (default 1)
  BENCH_TEMPERATURE  sampling temperature (default 0)
  BENCH_SEED         seed of the prompt / length sampling (default 0)
  BENCH_UNIQUE       1 starts every prompt with a random 8-hex tag, so no two requests share a prefix and vLLM's
                     prefix cache never skips a prefill (what `vllm bench serve --dataset-name random` sends)
  BENCH_RECORDS      append one JSON line per request here as it finishes (default: not written); with
                     ``--processes`` each worker process writes PATH.<pid>. Written as they finish, not at test
                     stop, so a worker that the master loses under load (missed heartbeats) still leaves its
                     records: the campaign's "512 users recorded nothing" step lost them all at stop.
  BENCH_META         write {"t_start", "t_stop", "users", ...} here at test stop
  BENCH_RETRY_AFTER  1 (default): a user refused with 429 or 503 waits the response's Retry-After (capped at 60 s,
                     as the openai SDK does) before its next request, as a real client would; 0 retries at once
                     (the runner before 2026-12-07: refused users hammered the proxy, and the refusals counted
                     were retries of a few users rather than requests of many)

Only Locust (gevent, geventhttpclient) and the standard library are needed: this file runs on the GPU machine.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import gevent
from locust import FastHttpUser, events, task
from locust.runners import WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` importable when run by path

from benchmarks.openai_stream import (
    StreamError,
    StreamMeter,
    api_path,
    load_prompts,
    parse_max_tokens,
    request_body,
    retry_after_s,
    sample_max_tokens,
)

DEFAULT_PROMPTS = Path(__file__).resolve().parent / "data" / "sui_questions.txt"
API = os.environ.get("BENCH_API", "chat")
PROMPTS = load_prompts(os.environ.get("BENCH_PROMPTS") or str(DEFAULT_PROMPTS))
MAX_TOKENS = parse_max_tokens(os.environ.get("BENCH_MAX_TOKENS", "128"))
IGNORE_EOS = os.environ.get("BENCH_IGNORE_EOS", "1") == "1"
TEMPERATURE = float(os.environ.get("BENCH_TEMPERATURE", "0"))
UNIQUE = os.environ.get("BENCH_UNIQUE", "0") == "1"
HONOUR_RETRY_AFTER = os.environ.get("BENCH_RETRY_AFTER", "1") == "1"
# a pipeline API with keys (every non-demo profile): BENCH_API_KEY is sent as the Bearer token
AUTH = {"Authorization": f"Bearer {os.environ['BENCH_API_KEY']}"} if os.environ.get("BENCH_API_KEY") else {}
RNG = random.Random(int(os.environ.get("BENCH_SEED", "0")))
RECORDS: list = []
META: dict = {"t_start": None, "t_stop": None}
_RECORDS_FILE = None


def _fire(environment, name: str, value: float | None, context: dict) -> None:
    if value is not None:
        environment.events.request.fire(request_type="LLM", name=name, response_time=value, response_length=0,
                                        exception=None, context=context)


class OpenAIStreamUser(FastHttpUser):
    """A closed-loop user: sends one streamed completion, reads it to the end, repeats (no think time)."""

    model = os.environ.get("BENCH_MODEL") or None
    network_timeout = 600.0
    connection_timeout = 30.0

    def on_start(self) -> None:
        if OpenAIStreamUser.model is None:
            OpenAIStreamUser.model = self.client.get("/v1/models", headers=AUTH).json()["data"][0]["id"]

    @task
    def stream_completion(self) -> None:
        max_tokens = sample_max_tokens(MAX_TOKENS, RNG)
        prompt = RNG.choice(PROMPTS)
        if UNIQUE:
            prompt = f"{random.getrandbits(32):08x} {prompt}"
        body = request_body(API, self.model, prompt, max_tokens, IGNORE_EOS, TEMPERATURE)
        path = api_path(API)
        start_wall = time.time()
        sent_at = time.perf_counter()
        meter = StreamMeter(sent_at, start_wall, max_tokens)
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity", **AUTH}
        wait_s = None
        with self.client.post(path, json=body, headers=headers, stream=True, catch_response=True,
                              name=f"POST {path}") as resp:
            error = None
            if resp.status_code != 200:
                error = f"HTTP {resp.status_code}: {(resp.text or '')[:200]}"
                if HONOUR_RETRY_AFTER and resp.status_code in (429, 503):
                    wait_s = retry_after_s(resp.headers.get("retry-after"))
            else:
                try:
                    _read_sse(resp, meter)
                except (StreamError, OSError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
            record = meter.finish(time.perf_counter())
            if error:
                record.ok, record.error = False, error
            elif not record.ok:
                error = record.error
            if error:
                resp.failure(error)
            else:
                resp.success()
        RECORDS.append(record)
        _write_record(self.environment, record)
        if record.ok:
            ctx = {}
            _fire(self.environment, "TTFT", record.ttft_ms, ctx)
            _fire(self.environment, "TPOT", record.tpot_ms, ctx)
            _fire(self.environment, "E2E", record.e2e_ms, ctx)
            _fire(self.environment, "output_tokens", float(record.output_tokens), ctx)
        if wait_s:
            gevent.sleep(wait_s)  # Locust's stop kills the greenlet, sleep included


def _read_sse(resp, meter: StreamMeter) -> None:
    """Read the SSE body line by line as it arrives (geventhttpclient's readline returns per line, unlike
    FastResponse.iter_content, whose read(n) blocks until n bytes)."""
    raw = resp._response
    while True:
        line = raw.readline(b"\n")
        if not line:
            return
        meter.feed(line.decode("utf-8", errors="replace"), time.perf_counter())


def _write_record(environment, record) -> None:
    """Append one request to this process's records file (line-buffered: a killed worker loses at most one)."""
    global _RECORDS_FILE
    path = os.environ.get("BENCH_RECORDS")
    if not path:
        return
    if _RECORDS_FILE is None:
        is_worker = isinstance(environment.runner, WorkerRunner)
        _RECORDS_FILE = open(f"{path}.{os.getpid()}" if is_worker else path, "a", encoding="utf-8",  # noqa: SIM115
                             buffering=1)
    _RECORDS_FILE.write(record.to_json() + "\n")


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    META["t_start"] = time.time()


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    META["t_stop"] = time.time()
    opts = environment.parsed_options
    META.update(users=getattr(opts, "num_users", None), host=environment.host, api=API,
                model=OpenAIStreamUser.model, max_tokens=list(MAX_TOKENS), ignore_eos=IGNORE_EOS,
                retry_after=HONOUR_RETRY_AFTER, requests=len(RECORDS))
    # With `locust --processes N` every worker process writes its own records (PATH.<pid>, as they finish); the
    # master (which sends no requests) writes the meta file. benchmarks.runner reads PATH and PATH.* together.
    is_worker = isinstance(environment.runner, WorkerRunner)
    if _RECORDS_FILE is not None:
        _RECORDS_FILE.flush()
    if (path := os.environ.get("BENCH_META")) and not is_worker:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(META, fh)

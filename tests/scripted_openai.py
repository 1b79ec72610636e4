"""A scripted OpenAI-compatible HTTP server for agent tests: real HTTP on 127.0.0.1, replies from a script.

    with ScriptedOpenAI() as server:
        server.script("agent", Reply("Thought: ...\\nFinal Answer: ..."), Reply(status=500))
        ... base_url=server.base_url ...

Each POST /v1/chat/completions pops the next reply of the requested model (a 400 when the script is empty, so a
test sees it). Like vLLM, the text is cut at the first ``stop`` string; ``stream: true`` gets SSE chunks (and a
usage chunk when asked). ``Reply(hang=True)`` never answers: it waits for the client to go away and counts that
in ``disconnects`` (the cancellation tests check that the agent really closes its upstream request).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support import free_port


@dataclass
class Reply:
    text: str = ""
    status: int = 200
    delay_s: float = 0.0
    hang: bool = False
    prompt_tokens: int = 11
    chunk_chars: int = 3
    usage: bool = True  # False: a non-streamed answer without the usage field
    finish_reason: str = "stop"  # "length": as if the server's max_tokens cut the text


class ScriptedOpenAI:
    def __init__(self) -> None:
        self.port = free_port()
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.requests: list[dict] = []
        self.tokenizer_requests: list[tuple[str, dict]] = []  # (path, body) of /tokenize and /detokenize
        self.token_chars = 1  # characters per token of /tokenize (the streamed completions count one per character)
        self._vocab: dict[str, int] = {}
        self.disconnects = 0
        self.hanging = threading.Event()
        app = Starlette(routes=[Route("/v1/models", self._models, methods=["GET"]),
                                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                                Route("/tokenize", self._tokenize, methods=["POST"]),
                                Route("/detokenize", self._detokenize, methods=["POST"]),
                                Route("/search", self._search, methods=["GET"])])
        self.search_results: list[dict] = []  # what GET /search answers (SearXNG JSON), for web-search tools
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, *replies: Reply | str) -> None:
        self.scripts[model].extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def requests_for(self, model: str) -> list[dict]:
        return [r for r in self.requests if r.get("model") == model]

    def reset(self) -> None:
        self.scripts.clear()
        self.requests.clear()
        self.tokenizer_requests.clear()
        self.token_chars = 1
        self.search_results = []
        self.disconnects = 0
        self.hanging.clear()

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("scripted server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model"} for m in ("agent", "domain")]})

    async def _tokenize(self, request: Request) -> Response:
        """vLLM's /tokenize: one token per ``token_chars`` characters (1 by default, as the completions count)."""
        body = await request.json()
        self.tokenizer_requests.append(("/tokenize", body))
        text, n = body["prompt"], self.token_chars
        tokens = [self._vocab.setdefault(text[i:i + n], len(self._vocab)) for i in range(0, len(text), n)]
        return JSONResponse({"count": len(tokens), "tokens": tokens, "max_model_len": 4096})

    async def _detokenize(self, request: Request) -> Response:
        body = await request.json()
        self.tokenizer_requests.append(("/detokenize", body))
        pieces = {token: piece for piece, token in self._vocab.items()}
        return JSONResponse({"prompt": "".join(pieces[t] for t in body["tokens"])})

    async def _search(self, request: Request) -> Response:
        self.requests.append({"search": dict(request.query_params)})
        return JSONResponse({"query": request.query_params.get("q"), "results": self.search_results})

    async def _wait(self, request: Request, seconds: float) -> bool:
        """Sleep, watching for the client to disconnect; True if it did."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                self.disconnects += 1
                return True
            await asyncio.sleep(0.02)
        return False

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        script = self.scripts[body.get("model", "")]
        if not script:
            return JSONResponse({"error": {"message": f"script exhausted for {body.get('model')}"}}, 400)
        reply = script.popleft()
        if reply.hang:
            self.hanging.set()
            await self._wait(request, 60)
            return Response(status_code=504)
        if reply.delay_s and await self._wait(request, reply.delay_s):
            return Response(status_code=499)
        if reply.status != 200:
            return JSONResponse({"error": {"message": f"scripted {reply.status}"}}, reply.status)
        text = reply.text
        stops = body.get("stop") or []
        for stop in [stops] if isinstance(stops, str) else stops:
            text = text.split(stop)[0]
        finish = reply.finish_reason
        if body.get("max_tokens") and len(text) > body["max_tokens"]:  # like vLLM: cut at the cap, "length"
            text, finish = text[:body["max_tokens"]], "length"
        usage = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": len(text),
                 "total_tokens": reply.prompt_tokens + len(text)}
        base = {"id": "chatcmpl-scripted", "created": int(time.time()), "model": body.get("model")}
        if not body.get("stream"):
            return JSONResponse({**base, "object": "chat.completion", **({"usage": usage} if reply.usage else {}),
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": finish}]})

        continuous = bool((body.get("stream_options") or {}).get("continuous_usage_stats"))

        def chunk(delta: dict, finish: str | None = None, with_usage: bool = False, sent: int = 0) -> str:
            payload = {**base, "object": "chat.completion.chunk",
                       "choices": [] if with_usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if with_usage:
                payload["usage"] = usage
            elif continuous:  # like vLLM: cumulative counts on every chunk (one token per character here)
                payload["usage"] = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": sent,
                                    "total_tokens": reply.prompt_tokens + sent}
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        async def events():
            yield chunk({"role": "assistant", "content": ""})
            for i in range(0, len(text), reply.chunk_chars):
                piece = text[i:i + reply.chunk_chars]
                yield chunk({"content": piece}, sent=i + len(piece))
            yield chunk({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                yield chunk({}, with_usage=True)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

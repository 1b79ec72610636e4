"""The seed's serving approach as a benchmark baseline: HF transformers ``generate``, ONE request at a time.

    python -m benchmarks.hf_baseline_server --model var/models/domain-internlm2 --port 8201 [--device cuda]

A minimal OpenAI-compatible wrapper (FastAPI + uvicorn): ``/v1/chat/completions`` and ``/v1/completions``,
streamed (SSE, ``stream_options.include_usage``) or not, ``max_tokens``, ``temperature``, ``ignore_eos`` (as
``min_new_tokens = max_tokens``). A lock lets exactly one ``generate`` run at a time and the others wait in line:
that is what the seed's Streamlit demo did, and what the vLLM tier is compared against. No batching, no KV cache
reuse across requests.

Tokens are streamed one SSE chunk per generated token (a ``BaseStreamer`` that hands each token id to the event
loop; ``TextIteratorStreamer`` would hold tokens back until they form a printable word, which hides TTFT/ITL).
``GET /baseline/stats`` reports how many generate calls ran and the most that ever ran at once (always 1).

Imports only torch, transformers, fastapi, uvicorn and the standard library (plus the in-memory InternLM2 ->
Llama loader), so it runs on the GPU machine as is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse


class TokenQueueStreamer:
    """transformers streamer: every generated token id goes to an asyncio queue (thread-safe hand-over)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue):
        self.loop, self.queue, self._prompt_seen = loop, queue, False

    def put(self, value) -> None:
        if not self._prompt_seen:  # the first call carries the prompt ids
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, int(token))

    def end(self) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)


class IncrementalDecoder:
    """Text delta per token; holds back an incomplete UTF-8 sequence (decoded as U+FFFD) until it completes."""

    def __init__(self, tokenizer):
        self.tokenizer, self.ids, self.emitted = tokenizer, [], ""

    def add(self, token: int) -> str:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        delta, self.emitted = text[len(self.emitted):], text
        return delta


class Baseline:
    def __init__(self, model, tokenizer, model_name: str):
        import torch

        self.model, self.tokenizer, self.model_name = model, tokenizer, model_name
        self.torch = torch
        self.lock = asyncio.Lock()
        self.generate_calls = 0
        self.running = 0
        self.max_running = 0

    def encode(self, body: dict, chat: bool) -> list[int]:
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise HTTPException(400, "messages must be a non-empty list")
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
            return list(prompt)
        if not isinstance(prompt, str):
            raise HTTPException(400, "prompt must be a string or a list of token ids")
        return self.tokenizer(prompt).input_ids

    def generate_kwargs(self, body: dict, n_prompt: int) -> dict:
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 16
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise HTTPException(400, "max_tokens must be a positive integer")
        limit = getattr(self.model.config, "max_position_embeddings", 4096)
        if n_prompt + max_tokens > limit:
            raise HTTPException(400, f"prompt ({n_prompt}) + max_tokens ({max_tokens}) exceeds {limit} tokens")
        temperature = float(body.get("temperature") if body.get("temperature") is not None else 1.0)
        kwargs = {"max_new_tokens": max_tokens, "do_sample": temperature > 0,
                  "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id}
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=float(body.get("top_p") or 1.0))
        if body.get("ignore_eos"):
            kwargs["min_new_tokens"] = max_tokens
        return kwargs

    def _generate(self, ids: list[int], kwargs: dict, streamer, cancel: threading.Event) -> list[int]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **_):
                return cancel.is_set()

        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.generate_calls += 1
        try:
            input_ids = self.torch.tensor([ids], device=self.model.device)
            with self.torch.inference_mode():
                out = self.model.generate(input_ids, attention_mask=self.torch.ones_like(input_ids),
                                          streamer=streamer, stopping_criteria=StoppingCriteriaList([Cancelled()]),
                                          **kwargs)
            return out[0, len(ids):].tolist()
        finally:
            self.running -= 1

    async def stream(self, ids: list[int], kwargs: dict, chat: bool, include_usage: bool):
        """SSE lines; the lock is held from before generate starts until its last token is sent."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        rid, created = f"cmpl-{uuid.uuid4().hex[:16]}", int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"
        decoder = IncrementalDecoder(self.tokenizer)

        def chunk(choice: dict | None, usage: dict | None = None) -> str:
            data = {"id": rid, "object": obj, "created": created, "model": self.model_name,
                    "choices": [choice] if choice else []}
            if usage:
                data["usage"] = usage
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        async with self.lock:
            task = loop.run_in_executor(None, self._generate, ids, kwargs, TokenQueueStreamer(loop, queue), cancel)
            n_out = 0
            try:
                if chat:
                    yield chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
                while (token := await queue.get()) is not None:
                    n_out += 1
                    text = decoder.add(token)
                    yield chunk({"index": 0, "delta": {"content": text}, "finish_reason": None} if chat
                                else {"index": 0, "text": text, "finish_reason": None})
                out = await task
                finish = "length" if len(out) >= kwargs["max_new_tokens"] else "stop"
                yield chunk({"index": 0, "delta": {}, "finish_reason": finish} if chat
                            else {"index": 0, "text": "", "finish_reason": finish})
                if include_usage:
                    yield chunk(None, {"prompt_tokens": len(ids), "completion_tokens": n_out,
                                       "total_tokens": len(ids) + n_out})
                yield "data: [DONE]\n\n"
            finally:
                cancel.set()  # client went away: stop generating, then release the lock
                if not task.done():
                    await asyncio.wait([task])

    async def complete(self, ids: list[int], kwargs: dict, chat: bool) -> dict:
        loop = asyncio.get_running_loop()
        async with self.lock:
            out = await loop.run_in_executor(None, self._generate, ids, kwargs, None, threading.Event())
        text = self.tokenizer.decode(out, skip_special_tokens=True)
        finish = "length" if len(out) >= kwargs["max_new_tokens"] else "stop"
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish} if chat
                  else {"index": 0, "text": text, "finish_reason": finish})
        return {"id": f"cmpl-{uuid.uuid4().hex[:16]}", "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()), "model": self.model_name, "choices": [choice],
                "usage": {"prompt_tokens": len(ids), "completion_tokens": len(out),
                          "total_tokens": len(ids) + len(out)}}


def build_app(baseline: Baseline) -> FastAPI:
    app = FastAPI(title="HF generate baseline (one request at a time)")

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": baseline.model_name, "object": "model", "owned_by": "baseline"}]}

    @app.get("/baseline/stats")
    async def stats():
        return {"generate_calls": baseline.generate_calls, "running": baseline.running,
                "max_running": baseline.max_running, "waiting_or_running": baseline.lock.locked()}

    async def handle(request: Request, chat: bool):
        try:
            body = await request.json()
        except json.JSONDecodeError:
            raise HTTPException(400, "request body is not JSON") from None
        if body.get("model") not in (None, baseline.model_name):
            raise HTTPException(404, f"model {body.get('model')!r} not served; this server has {baseline.model_name!r}")
        ids = baseline.encode(body, chat)
        kwargs = baseline.generate_kwargs(body, len(ids))
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(baseline.stream(ids, kwargs, chat, include_usage),
                                     media_type="text/event-stream")
        return JSONResponse(await baseline.complete(ids, kwargs, chat))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await handle(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await handle(request, chat=False)

    return app


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="HF generate, one request at a time, behind an OpenAI-compatible API")
    ap.add_argument("--model", required=True, help="model folder (Qwen2/Llama, or InternLM2: converted in memory)")
    ap.add_argument("--served-model-name", default="internlm2-chat-sui")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8201)
    ap.add_argument("--dtype", default="auto", help="auto | bfloat16 | float16 | float32")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    args = ap.parse_args(argv)
    if not (Path(args.model) / "config.json").is_file():
        ap.error(f"{args.model} is not a model folder (no config.json)")

    import uvicorn

    from benchmarks.hf_loader import load_causal_lm

    model, tokenizer = load_causal_lm(args.model, args.dtype, args.device)
    print(f"loaded {args.model} on {model.device} ({model.dtype}); one request at a time", flush=True)
    uvicorn.run(build_app(Baseline(model, tokenizer, args.served_model_name)), host=args.host, port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()

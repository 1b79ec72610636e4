"""The chat-completions handler: maps an OpenAI request onto the react_tier agent API (``run`` / ``stream`` /
``check_upstreams``) and its result and events back onto OpenAI responses and SSE chunks. No agent logic here."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from deployments.config import ApiSettings
from deployments.protocol import (
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    DeltaMessage,
    ResponseMessage,
    UsageInfo,
    completion_id,
    error_body,
)

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An HTTP error in OpenAI's error format."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def classify_exception(exc: BaseException) -> ApiError:
    """Map failures from the agent deployment (or Serve itself) to a clear 4xx/5xx."""
    from ray.serve.exceptions import BackPressureError

    from react_tier import AgentInputError, UpstreamError

    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AgentInputError):
        return ApiError(400, str(exc).splitlines()[0] if str(exc) else "invalid question", "messages")
    if isinstance(exc, UpstreamError):
        return ApiError(exc.status_code, str(exc).splitlines()[0] if str(exc) else "upstream LLM tier failed")
    if isinstance(exc, BackPressureError):
        return ApiError(503, "the agent tier is at capacity (queue full); retry later")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return ApiError(504, "the request exceeded the pipeline's time limit")
    log.exception("unexpected error in the pipeline", exc_info=exc)
    return ApiError(500, f"internal error: {type(exc).__name__}")


def usage_of(result: dict[str, Any]) -> UsageInfo:
    """Tokens the pipeline spent upstream, summed over the LLM tiers."""
    prompt = sum(int(u.get("prompt_tokens", 0)) for u in (result.get("usage") or {}).values())
    completion = sum(int(u.get("completion_tokens", 0)) for u in (result.get("usage") or {}).values())
    return UsageInfo(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def sui_extras(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("request_id", "finish_reason", "citations", "steps", "draft", "usage")
    return {k: result.get(k) for k in keys}


class OpenAIServingChat:
    def __init__(self, settings: ApiSettings, agent: Any, metrics: Any | None = None):
        self.settings = settings
        self.agent = agent  # a react_tier.ReActAgent (or anything with its run/stream/check_upstreams)
        self.metrics = metrics

    def validate(self, request: ChatCompletionRequest) -> tuple[str, list[dict[str, str]]]:
        if request.model != self.settings.served_model_name:
            raise ApiError(404, f"model {request.model!r} does not exist; this API serves "
                                f"{self.settings.served_model_name!r}", "model")
        try:
            texts = [(m.role, m.text()) for m in request.messages]
        except ValueError as exc:
            raise ApiError(400, str(exc), "messages") from None
        question = texts[-1][1]
        if len(question) > self.settings.max_question_chars:
            raise ApiError(400, f"the question has {len(question)} characters; the limit is "
                                f"{self.settings.max_question_chars}", "messages")
        history = [{"role": role, "content": text} for role, text in texts[:-1]]
        if sum(len(m["content"]) for m in history) > self.settings.max_history_chars:
            raise ApiError(400, f"the conversation history exceeds {self.settings.max_history_chars} characters",
                           "messages")
        return question, history

    async def create(self, request: ChatCompletionRequest, request_id: str) -> ChatCompletionResponse:
        question, history = self.validate(request)
        started = time.perf_counter()
        result = (await asyncio.wait_for(self.agent.run(question, request_id=request_id, history=history),
                                         timeout=self.settings.request_timeout_s)).model_dump(mode="json")
        self._observe(started, ttft=time.perf_counter() - started, stream=False)
        return ChatCompletionResponse(
            id=f"chatcmpl-{request_id}", model=request.model, usage=usage_of(result), sui=sui_extras(result),
            choices=[ChatCompletionChoice(message=ResponseMessage(content=result["answer"]), finish_reason="stop")])

    async def stream(self, request: ChatCompletionRequest, request_id: str) -> AsyncIterator[str]:
        """SSE lines. Validation happens before the first byte, so bad input still gets a 4xx status."""
        question, history = self.validate(request)
        return self._stream(request, request_id, question, history)

    async def _stream(self, request: ChatCompletionRequest, request_id: str, question: str,
                      history: list[dict[str, str]]) -> AsyncIterator[str]:
        started = time.perf_counter()
        first_token_at: float | None = None
        chunk_id, created = f"chatcmpl-{request_id}", int(time.time())

        def chunk(delta: DeltaMessage, finish: str | None = None, **extra: Any) -> str:
            body = ChatCompletionChunk(id=chunk_id, created=created, model=request.model,
                                       choices=[ChatCompletionChunkChoice(delta=delta, finish_reason=finish)], **extra)
            return f"data: {body.model_dump_json(exclude_none=True)}\n\n"

        yield chunk(DeltaMessage(role="assistant", content=""))
        events = self.agent.stream(question, request_id=request_id, history=history)
        deadline = started + self.settings.request_timeout_s
        try:
            async for item in _with_deadline(events, deadline):
                kind = item.type
                event = item.model_dump(mode="json") if kind != "answer_delta" else {"text": item.text}
                if kind == "answer_delta" and event.get("text"):
                    first_token_at = first_token_at or time.perf_counter()
                    yield chunk(DeltaMessage(content=event["text"]))
                elif kind in ("step_started", "step_finished") and request.sui_events:
                    yield f"event: sui.step\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"
                elif kind == "done":
                    result = event["result"]
                    yield chunk(DeltaMessage(), finish="stop", sui=sui_extras(result))
                    if request.stream_options and request.stream_options.include_usage:
                        usage = ChatCompletionChunk(id=chunk_id, created=created, model=request.model, choices=[],
                                                    usage=usage_of(result))
                        yield f"data: {usage.model_dump_json(exclude_none=True)}\n\n"
        except asyncio.CancelledError:  # client went away: closing the agent's stream cancels its upstream calls
            await events.aclose()
            raise
        except Exception as exc:  # noqa: BLE001 - the status line is sent: report in-band, OpenAI-style
            await events.aclose()
            err = classify_exception(exc)
            self.count_response(err.status)
            yield f"data: {json.dumps(error_body(err.status, err.message), ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"
            return
        self._observe(started, ttft=(first_token_at or time.perf_counter()) - started, stream=True)
        yield "data: [DONE]\n\n"

    def _observe(self, started: float, ttft: float, stream: bool) -> None:
        if self.metrics is None:
            return
        tags = {"stream": str(stream).lower()}
        self.metrics.e2e.observe(time.perf_counter() - started, tags=tags)
        self.metrics.ttft.observe(ttft, tags=tags)
        self.count_response(200)

    def count_response(self, status: int) -> None:
        if self.metrics is not None:
            self.metrics.requests.inc(tags={"status": str(status)})


async def _with_deadline(events: AsyncIterator[dict], deadline: float) -> AsyncIterator[dict]:
    iterator = events.__aiter__()
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError
        try:
            yield await asyncio.wait_for(iterator.__anext__(), timeout=remaining)
        except StopAsyncIteration:
            return


__all__ = ["ApiError", "OpenAIServingChat", "classify_exception", "completion_id"]

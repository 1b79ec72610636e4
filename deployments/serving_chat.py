"""The chat-completions handler: maps an OpenAI request onto the react_tier agent API (``run`` / ``stream`` /
``check_upstreams``) and its result and events back onto OpenAI responses and SSE chunks. No agent logic here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError

from deployments.config import ApiSettings
from deployments.errors import ApiError, classify_exception
from deployments.protocol import (
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    DeltaMessage,
    ResponseMessage,
    SuiExtras,
    error_body,
    openai_finish_reason,
    usage_of,
)
from deployments.request_context import current_context, received_at
from react_tier.errors import AgentInputError
from react_tier.request import Agent, AgentRequest
from react_tier.results import AgentEvent, AgentResult, AnswerDelta, Done, StepFinished, StepStarted

log = logging.getLogger(__name__)


class OpenAIServingChat:
    """One chat request end to end: ``prepare`` (everything that can refuse it, before any byte is sent), then
    ``create`` (one JSON response) or ``stream`` (SSE lines)."""

    def __init__(self, settings: ApiSettings, agent: Agent, metrics: Any | None = None):
        self.settings = settings
        self.agent = agent  # react_tier.ReActAgent, or a test double built on the same AgentRequest contract
        self.metrics = metrics
        self._ready: tuple[float, dict[str, bool]] | None = None
        self._ready_lock = asyncio.Lock()

    async def check_upstreams(self, ttl_s: float = 3.0) -> dict[str, bool]:
        """The agent's upstream check, cached ``ttl_s`` (probes every second must not become LLM load); one
        check at a time, concurrent callers share its answer."""
        async with self._ready_lock:
            if self._ready is None or time.monotonic() - self._ready[0] > ttl_s:
                self._ready = (time.monotonic(), await self.agent.check_upstreams())
            return dict(self._ready[1])

    def prepare(self, request: ChatCompletionRequest, request_id: str) -> AgentRequest:
        """The agent request, checked by the agent's own validator; ApiError (4xx) for what is refused."""
        if request.model != self.settings.served_model_name:
            raise ApiError(404, f"model {request.model!r} does not exist; this API serves "
                                f"{self.settings.served_model_name!r}", "model")
        per_call = self.settings.agent.agent_llm.max_tokens  # vLLM refuses min_tokens above a call's cap
        if request.min_tokens is not None and request.min_tokens > per_call:
            raise ApiError(400, f"min_tokens {request.min_tokens} is above the agent tier's {per_call} "
                                "tokens per call", "min_tokens")
        try:
            checked = self.agent.check(request.to_agent_request(request_id))
        except AgentInputError as exc:
            raise ApiError(400, str(exc), exc.param or "messages") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ApiError(400, first["msg"], ".".join(str(p) for p in first["loc"]) or None) from None
        log.info("request_accepted", extra={"stream": bool(request.stream), "messages": len(request.messages),
                                            "max_steps": checked.max_steps, "user": request.user})
        return checked

    async def run(self, agent_request: AgentRequest) -> AgentResult:
        """One whole run within the pipeline's time limit (its latency observed): the seam every non-streaming
        API (chat completions, responses) runs through."""
        started = received_at()
        result = await asyncio.wait_for(self.agent.run(agent_request), timeout=self.settings.request_timeout_s)
        self._observe(started, ttft=time.perf_counter() - started, stream=False)
        return result

    async def events(self, agent_request: AgentRequest) -> AsyncIterator[AgentEvent]:
        """The run's events until the pipeline's time limit (TimeoutError after it; latency and time to the first
        answer token observed at the end): the seam every streaming API runs through. A client that leaves
        (cancellation) or a failure closes the agent's stream, which cancels its upstream calls."""
        started = received_at()
        first_token_at: float | None = None
        events = self.agent.stream(agent_request)
        try:
            async for item in _with_deadline(events, started + self.settings.request_timeout_s):
                if isinstance(item, AnswerDelta) and item.text:
                    first_token_at = first_token_at or time.perf_counter()
                yield item
        except asyncio.CancelledError:
            with contextlib.suppress(RuntimeError):  # (already closing itself: "generator is already running")
                await events.aclose()
            raise
        except BaseException:
            await events.aclose()
            raise
        self._observe(started, ttft=(first_token_at or time.perf_counter()) - started, stream=True)

    async def create(self, request: ChatCompletionRequest, request_id: str) -> ChatCompletionResponse:
        result = await self.run(self.prepare(request, request_id))
        return ChatCompletionResponse(
            id=f"chatcmpl-{request_id}", model=request.model, usage=usage_of(result),
            sui=SuiExtras.from_result(result),
            choices=[ChatCompletionChoice(message=ResponseMessage(content=result.answer),
                                          finish_reason=openai_finish_reason(result))])

    async def stream(self, request: ChatCompletionRequest, request_id: str) -> AsyncIterator[str]:
        """SSE lines. Everything that can refuse the request runs here, before the first byte: a refusal is a 4xx
        status, never a 200 followed by an error."""
        agent_request = self.prepare(request, request_id)
        mark_streaming()
        return self._stream(request, request_id, agent_request)

    async def _stream(self, request: ChatCompletionRequest, request_id: str,
                      agent_request: AgentRequest) -> AsyncIterator[str]:
        chunk_id, created = f"chatcmpl-{request_id}", int(time.time())

        def chunk(delta: DeltaMessage, finish: str | None = None, **extra: Any) -> str:
            body = ChatCompletionChunk(id=chunk_id, created=created, model=request.model,
                                       choices=[ChatCompletionChunkChoice(delta=delta, finish_reason=finish)], **extra)
            return f"data: {body.model_dump_json(exclude_none=True)}\n\n"

        yield chunk(DeltaMessage(role="assistant", content=""))
        try:
            async with contextlib.aclosing(self.events(agent_request)) as events:
                async for item in events:
                    if isinstance(item, AnswerDelta):
                        if item.text:
                            yield chunk(DeltaMessage(content=item.text))
                    elif isinstance(item, StepStarted | StepFinished):
                        if request.sui_events:
                            yield f"event: sui.step\ndata: {item.model_dump_json()}\n\n"
                    elif isinstance(item, Done):
                        result = item.result
                        yield chunk(DeltaMessage(), finish=openai_finish_reason(result),
                                    sui=SuiExtras.from_result(result))
                        if request.stream_options and request.stream_options.include_usage:
                            usage = ChatCompletionChunk(id=chunk_id, created=created, model=request.model,
                                                        choices=[], usage=usage_of(result))
                            yield f"data: {usage.model_dump_json(exclude_none=True)}\n\n"
        except Exception as exc:  # noqa: BLE001 - the status line is sent: report in-band, OpenAI-style
            err = stream_failure(exc)
            yield f"data: {json.dumps(error_body(err.status, err.message), ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    def _observe(self, started: float, ttft: float, stream: bool) -> None:
        """Latency of a successful completion (the response itself is counted by the ingress middleware)."""
        if self.metrics is None:
            return
        label = "true" if stream else "false"
        self.metrics.e2e.labels(label).observe(time.perf_counter() - started)
        self.metrics.ttft.labels(label).observe(ttft)


def mark_streaming() -> None:
    """Count the current request as a stream (its SSE response is about to start)."""
    context = current_context()
    if context is not None:
        context.mark_streaming()


def stream_failure(exc: BaseException) -> ApiError:
    """The error a started stream reports in-band; counted with the status the client reads in the stream."""
    err = classify_exception(exc)
    context = current_context()
    if context is not None:
        context.stream_failed(err.status)
    return err


async def _with_deadline(events: AsyncIterator[dict], deadline: float) -> AsyncIterator[dict]:
    """``events`` until ``deadline`` (TimeoutError after it). ``asyncio.timeout``, not ``wait_for``: the next event
    is awaited in this task, so a cancellation (the client left; anyio's cancel scope delivers it repeatedly)
    reaches the agent's stream directly instead of interrupting wait_for's clean-up of a child task and leaving the
    stream running (seen under Serve: "aclose(): asynchronous generator is already running", counted as a 500)."""
    iterator = events.__aiter__()
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError
        try:
            async with asyncio.timeout(remaining):
                item = await iterator.__anext__()
        except StopAsyncIteration:
            return
        yield item


__all__ = ["OpenAIServingChat", "mark_streaming", "stream_failure"]

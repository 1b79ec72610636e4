"""OpenAI-compatible chat client for one tier: per-call timeouts, jittered retries on connection errors/5xx.

The official ``openai`` AsyncOpenAI client does the HTTP; its own retries are off (``max_retries=0``) so that
tenacity is the only retry layer and every attempt is reported once to the hooks. Timeouts are not retried:
the run has a deadline, and a request that timed out once usually times out again.
Cancelling the awaiting task closes the HTTP response, so vLLM sees the disconnect and aborts the generation.

Connection pool: each client keeps one ``httpx.AsyncClient`` for all the runs of its process, with up to
:data:`POOL_SIZE` kept-alive connections. The openai default keeps only 100 alive, so a Serve replica with more
concurrent calls than that closed and reopened a TCP connection (and vLLM accepted a new one) for most calls.

Program-aware priority (``extra_body: {priority: program}``): vLLM started with ``--scheduling-policy priority``
runs lower ``priority`` values first. An agent run is a program of several calls; with ``program`` each call is
sent with ``priority = -(assistant turns already in its messages)``, so a run's later calls overtake the first
calls of runs that started later (Autellix, arXiv 2502.13965, schedules by attained service the same way) and
started runs finish instead of every run slowing down together at saturation. An integer ``priority`` is passed
through unchanged; vLLM servers without the priority policy reject a non-zero priority with HTTP 400.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import openai
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from react_tier.errors import UpstreamError
from react_tier.results import Usage
from react_tier.settings import LLMEndpointSettings

POOL_SIZE = 1024  # kept-alive upstream connections per client (>= the in-flight calls of one replica)
PROGRAM_PRIORITY = "program"
LLMCallHook = Callable[[str, float, "dict[str, int] | None", "str | None"], Awaitable[None]]


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APITimeoutError):
        return False
    if isinstance(exc, openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def to_upstream_error(tier: str, exc: BaseException) -> UpstreamError:
    """Map a client exception to the API status the caller should return."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, (openai.APITimeoutError, TimeoutError)):
        return UpstreamError(f"{tier} LLM timed out", 504)
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamError(f"{tier} LLM unreachable: {exc}", 503)
    if isinstance(exc, openai.APIStatusError) and exc.status_code == 503:
        return UpstreamError(f"{tier} LLM unavailable (HTTP 503)", 503)
    return UpstreamError(f"{tier} LLM gave a bad response: {type(exc).__name__}: {exc}", 502)


def program_priority(messages: list[dict]) -> int:
    """vLLM priority of a call (lower runs first): minus the number of assistant turns the run already made."""
    return -sum(1 for m in messages if m.get("role") == "assistant")


class LLMClient:
    def __init__(self, tier: str, settings: LLMEndpointSettings, on_call: LLMCallHook | None = None) -> None:
        self.tier = tier
        self.settings = settings
        self.on_call = on_call
        limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE, keepalive_expiry=30)
        self.client = openai.AsyncOpenAI(base_url=settings.base_url, api_key=settings.api_key.get_secret_value(),
                                         max_retries=0, http_client=openai.DefaultAsyncHttpxClient(limits=limits))

    def _timeout(self, budget_s: float | None) -> openai.Timeout:
        read = self.settings.timeout_s if budget_s is None else max(0.05, min(self.settings.timeout_s, budget_s))
        return openai.Timeout(read, connect=min(self.settings.connect_timeout_s, read))

    def _account(self, sink: dict[str, Usage] | None, result: Completion) -> None:
        if sink is not None:
            usage = sink.setdefault(self.tier, Usage())
            usage.prompt_tokens += result.prompt_tokens
            usage.completion_tokens += result.completion_tokens
            usage.calls += 1

    async def _report(self, started: float, usage: dict[str, int] | None, error: BaseException | None) -> None:
        if self.on_call is not None:
            await self.on_call(self.tier, time.monotonic() - started, usage,
                               type(error).__name__ if error else None)

    def _retrying(self) -> AsyncRetrying:
        s = self.settings
        return AsyncRetrying(stop=stop_after_attempt(s.max_retries + 1), reraise=True,
                             wait=wait_random_exponential(multiplier=s.retry_backoff_s, max=max(s.retry_backoff_s * 8, 0.01)),
                             retry=retry_if_exception(_retryable))

    def _request(self, messages: list[dict], stop: list[str] | None, max_tokens: int | None) -> dict:
        body = {"model": self.settings.model, "messages": messages, "temperature": self.settings.temperature,
                "max_tokens": max_tokens or self.settings.max_tokens}
        if stop:
            body["stop"] = stop
        if self.settings.extra_body:
            body["extra_body"] = dict(self.settings.extra_body)
            if body["extra_body"].get("priority") == PROGRAM_PRIORITY:
                body["extra_body"]["priority"] = program_priority(messages)
        return body

    async def _attempt(self, body: dict, budget_s: float | None):
        started = time.monotonic()
        try:
            return await self.client.chat.completions.create(**body, timeout=self._timeout(budget_s))
        except Exception as exc:
            await self._report(started, None, exc)
            raise

    async def complete(self, messages: list[dict], *, stop: list[str] | None = None, max_tokens: int | None = None,
                       budget_s: float | None = None, usage: dict[str, Usage] | None = None) -> Completion:
        """One non-streamed chat completion (with retries)."""
        started = time.monotonic()
        response = await self._retrying()(self._attempt, self._request(messages, stop, max_tokens), budget_s)
        choice, counts = response.choices[0], response.usage
        result = Completion(choice.message.content or "", counts.prompt_tokens if counts else 0,
                            counts.completion_tokens if counts else 0, choice.finish_reason)
        self._account(usage, result)
        await self._report(started, {"prompt_tokens": result.prompt_tokens,
                                     "completion_tokens": result.completion_tokens}, None)
        return result

    async def stream(self, messages: list[dict], *, stop: list[str] | None = None, max_tokens: int | None = None,
                     budget_s: float | None = None, final: Completion | None = None,
                     usage: dict[str, Usage] | None = None) -> AsyncIterator[str]:
        """Stream text deltas. Opening the stream is retried; a stream that breaks midway is not.

        ``final`` (optional) is filled with the whole text, token usage and finish reason.
        """
        final = final if final is not None else Completion("")
        body = {**self._request(messages, stop, max_tokens), "stream": True,
                "stream_options": {"include_usage": True}}
        started = time.monotonic()
        stream = await self._retrying()(self._attempt, body, budget_s)
        try:
            async with stream:  # closes the HTTP response on cancellation, error or early exit
                async for chunk in stream:
                    if chunk.usage:
                        final.prompt_tokens = chunk.usage.prompt_tokens
                        final.completion_tokens = chunk.usage.completion_tokens
                    if chunk.choices:
                        final.finish_reason = chunk.choices[0].finish_reason or final.finish_reason
                        delta = chunk.choices[0].delta.content or ""
                        if delta:
                            final.text += delta
                            yield delta
        except Exception as exc:
            await self._report(started, None, exc)
            raise
        self._account(usage, final)
        await self._report(started, {"prompt_tokens": final.prompt_tokens,
                                     "completion_tokens": final.completion_tokens}, None)

    async def ready(self, timeout_s: float = 3.0) -> bool:
        """True when ``GET /v1/models`` answers."""
        try:
            await self.client.models.list(timeout=timeout_s)
            return True
        except Exception:  # noqa: BLE001 - readiness is a yes/no question
            return False

    async def aclose(self) -> None:
        await self.client.close()

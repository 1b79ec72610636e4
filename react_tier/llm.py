"""OpenAI-compatible chat client for one tier: per-call timeouts, jittered retries on connection errors/5xx, a
circuit breaker (react_tier/breaker.py) in front of every attempt.

The official ``openai`` AsyncOpenAI client does the HTTP; its own retries are off (``max_retries=0``) so that
tenacity is the only retry layer and every attempt is reported once to the hooks. Timeouts are not retried:
the run has a deadline, and a request that timed out once usually times out again.
Cancelling the awaiting task closes the HTTP response, so vLLM sees the disconnect and aborts the generation.

Chunks as dicts: calls go through the SDK's generic ``client.post(..., cast_to=object)`` (its documented path for
any endpoint): the SDK still does the connection pool, auth, timeouts, SSE decoding and the status-error types, but
each chunk stays the ``dict`` that ``json.loads`` made. The typed path (``chat.completions.create``) builds a
pydantic ``ChatCompletionChunk`` per streamed chunk: profiled with py-spy in a Serve replica running 12 agent runs on
2 cores, that construction was 58% of the replica's event loop (241 of 418 samples), the loop that also answers
/health and refuses the overload with 429s. benchmarks/stream_reader.py: 19.1 -> 2.95 ms of CPU per 128-token
turn (6.5x); with vLLM's ``--stream-interval 8`` (serving profile ``stream_interval``), 1.06 ms.

Connection pool: each client keeps one ``httpx.AsyncClient`` for all the runs of its process, with up to
:data:`POOL_SIZE` kept-alive connections. The openai default keeps only 100 alive, so a Serve replica with more
concurrent calls than that closed and reopened a TCP connection (and vLLM accepted a new one) for most calls.

Program-aware priority (``extra_body: {priority: program}``): vLLM started with ``--scheduling-policy priority``
runs lower ``priority`` values first. An agent run is a program of several calls; with ``program`` each call is
sent with ``priority = -(assistant turns already in its messages)``, so a run's later calls overtake the first
calls of runs that started later (Autellix, arXiv 2502.13965, schedules by attained service the same way) and
started runs finish instead of every run slowing down together at saturation. ``deadline`` sends the run's
absolute deadline instead (``priority`` = epoch milliseconds at which the call's budget ends: earliest deadline
first, the same key on every replica and both tiers; with one ``deadline_s`` for all runs it is "oldest run first").
An integer ``priority`` is passed through unchanged; vLLM servers without the priority policy reject a non-zero
priority with HTTP 400.

Request ids: every HTTP attempt carries ``X-Request-Id: <request id>.<tier initial><n>`` (the pipeline request's id
from :data:`suiqa.logs.REQUEST_ID`, plus a per-client call number). vLLM takes the header as its request id (its
response id is ``chatcmpl-<header>``; ``--enable-request-id-headers`` echoes it), so one request can be followed into
both tiers. Each call gets its own id because vLLM aborts by the external id: a stream closed at the answer's token
cap must not abort the next call of the same request. Each attempt is one log line (event ``llm_call``: tier, call
id, replica, latency, status, vLLM's response id).

Replicas: a tier may be several vLLM servers (settings ``replicas``, or ``resolve_dns`` on a headless
Service's name). Each call picks one with react_tier/routing.py (every call of a run on the same replica, for
its prefix cache; bounded load), each replica has its own circuit breaker, and a retry after an upstream fault
goes to the next replica on the ring. One endpoint behaves exactly as before (one breaker named after the
tier).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from react_tier.breaker import CircuitBreaker
from react_tier.errors import UpstreamError
from react_tier.hooks import HookSet
from react_tier.results import Usage
from react_tier.routing import RUN_KEY, BoundedLoadRouter, EndpointSet
from react_tier.settings import LLMEndpointSettings
from suiqa.logs import REQUEST_ID_HEADER, current_request_id

log = logging.getLogger(__name__)

POOL_SIZE = 1024  # kept-alive upstream connections per client (>= the in-flight calls of one replica)
PROGRAM_PRIORITY = "program"
DEADLINE_PRIORITY = "deadline"
LLMCallHook = Callable[[str, float, "dict[str, int] | None", "str | None"], Awaitable[None]]


@dataclass
class Completion:
    """One call's answer: its text, token counts and finish reason (a stream's, once it ended)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None

    @property
    def usage(self) -> Usage:
        """This call as a run's usage counts it (one call)."""
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens, calls=1)


@dataclass(frozen=True)
class TextDelta:
    """A streamed chunk's text, and the completion tokens up to its end (exact with vLLM's continuous usage
    stats, else one token per chunk): where each token ends in the text, for cutting an answer at max_tokens."""

    text: str
    tokens: int


@dataclass(frozen=True)
class Finish:
    """The stream's last delta: why the tier stopped, and the call's usage (a stream the caller closes before it
    ends has none, as vLLM's own usage chunk comes last)."""

    reason: str | None
    usage: Usage


LLMDelta = TextDelta | Finish


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APITimeoutError):
        return False
    if isinstance(exc, openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def _status_of(exc: BaseException | None) -> int | str:
    """HTTP status of an attempt for the logs: 200, the upstream's error status, or what went wrong."""
    if exc is None:
        return 200
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code
    if isinstance(exc, (openai.APITimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error"
    return type(exc).__name__


def _upstream_fault(exc: BaseException) -> bool:
    """A failure that says the tier is unwell (counts for the breaker); a 4xx is the request's own fault."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500
    return isinstance(exc, (openai.APIConnectionError, TimeoutError, ConnectionError)) or \
        type(exc).__module__.startswith("httpx")


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


def deadline_priority(budget_s: float | None, timeout_s: float, now: float | None = None) -> int:
    """vLLM priority of a call (lower runs first): the epoch millisecond at which its run's budget ends (the call's
    own timeout when it has no budget)."""
    return int(((time.time() if now is None else now) + (timeout_s if budget_s is None else budget_s)) * 1000)


class LLMClient:
    def __init__(self, tier: str, settings: LLMEndpointSettings, on_call: LLMCallHook | None = None,
                 hooks: HookSet | None = None) -> None:
        self.tier = tier
        self.settings = settings
        self.on_call = on_call
        self.hooks = hooks or HookSet()  # span() around each call, upstream_headers() on each attempt
        limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE, keepalive_expiry=30)
        self.http = openai.DefaultAsyncHttpxClient(limits=limits)  # the one pool (also /tokenize, /detokenize)
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self.endpoints = EndpointSet(settings.base_url, settings.replicas, settings.resolve_dns,
                                     settings.dns_refresh_s)
        self.router = BoundedLoadRouter(self.endpoints.urls, settings.routing, settings.balance_factor)
        self._calls = itertools.count(1)

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The SDK client of ``base_url`` (with one endpoint: the one every call uses; tests replace it)."""
        return self.client_for(self.settings.base_url)

    @client.setter
    def client(self, value: openai.AsyncOpenAI) -> None:
        self._clients[self.settings.base_url] = value

    def client_for(self, url: str) -> openai.AsyncOpenAI:
        """The SDK client of one replica (all share the one connection pool)."""
        if url not in self._clients:
            key = self.settings.api_key.get_secret_value()
            self._clients[url] = openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0,
                                                    http_client=self.http)
        return self._clients[url]

    def breaker_for(self, url: str) -> CircuitBreaker:
        """The replica's circuit breaker; with one endpoint it is the tier's (named after the tier)."""
        if url not in self._breakers:
            single = not self.settings.replicas and not self.settings.resolve_dns
            name = self.tier if single else f"{self.tier} replica {urlsplit(url).netloc}"
            s = self.settings
            self._breakers[url] = CircuitBreaker(name, s.breaker_failures, s.breaker_reset_s)
        return self._breakers[url]

    @property
    def breaker(self) -> CircuitBreaker:
        """The first replica's breaker (the tier's, with one endpoint)."""
        return self.breaker_for(self.router.nodes[0])

    @breaker.setter
    def breaker(self, value: CircuitBreaker) -> None:
        self._breakers[self.router.nodes[0]] = value

    async def _pick(self, avoid: set[str]) -> str:
        """The replica for the next attempt: the run's (RUN_KEY) by the router, skipping replicas whose
        breaker is open and those that failed this call (``avoid``) while another is usable; all open: the
        first one, whose breaker then refuses the call (CircuitOpenError)."""
        urls = await self.endpoints.current()
        if tuple(urls) != self.router.nodes:  # a DNS refresh: forget the clients and breakers of pods gone
            self.router.set_nodes(urls)
            for gone in set(self._clients) - set(urls) - {self.settings.base_url}:
                del self._clients[gone]
            for gone in set(self._breakers) - set(urls):
                del self._breakers[gone]
        key = RUN_KEY.get()
        url = (self.router.route(key, lambda u: u not in avoid and self.breaker_for(u).ready)
               or self.router.route(key, lambda u: self.breaker_for(u).ready))
        return url or self.router.nodes[0]

    def current_url(self) -> str:
        """The replica of the current run (for /tokenize), else the first one."""
        return self.router.pinned(RUN_KEY.get()) or self.router.nodes[0]

    def release_run(self, key: str) -> None:
        """Run ``key`` ended: its replica's load drops (the router's bounded load counts runs in flight)."""
        self.router.release(key)

    @property
    def model_name(self) -> str:
        """What each chat call asks for: the tier's LoRA adapter when one is set, else its model."""
        return self.settings.model_name

    def _call_id(self) -> str | None:
        """The X-Request-Id of one upstream attempt (None outside a request: vLLM then makes its own)."""
        request_id = current_request_id()
        return f"{request_id}.{self.tier[:1]}{next(self._calls)}" if request_id else None

    def _timeout(self, budget_s: float | None, stream: bool = False) -> openai.Timeout:
        """Whole call ≤ timeout_s (and the run's budget); a stream's chunks ≤ stream_idle_timeout_s apart."""
        whole = self.settings.timeout_s if budget_s is None else max(0.05, min(self.settings.timeout_s, budget_s))
        read = min(whole, self.settings.stream_idle_timeout_s) if stream else whole
        return openai.Timeout(whole, read=read, connect=min(self.settings.connect_timeout_s, whole))

    def _judge(self, exc: BaseException, trace: dict[str, Any]) -> None:
        breaker = self.breaker_for(trace["replica"])
        if _upstream_fault(exc):
            breaker.failure()
            trace.setdefault("failed", set()).add(trace["replica"])  # a retry goes to another replica
        else:
            breaker.release()

    def _log(self, latency_s: float, usage: dict[str, int] | None, error: BaseException | None,
             trace: dict[str, Any], status: int | str | None = None) -> None:
        log.log(logging.WARNING if error else logging.INFO, "llm_call",
                extra={"tier": self.tier, "call_id": trace.get("call_id"), "upstream_id": trace.get("upstream_id"),
                       "replica": urlsplit(trace["replica"]).netloc if trace.get("replica") else None,
                       "latency_ms": round(latency_s * 1000, 1), "status": status or _status_of(error),
                       "error": f"{type(error).__name__}: {error}"[:300] if error else None,
                       "prompt_tokens": (usage or {}).get("prompt_tokens"),
                       "completion_tokens": (usage or {}).get("completion_tokens")})

    async def _report(self, started: float, usage: dict[str, int] | None, error: BaseException | None,
                      trace: dict[str, Any] | None = None) -> None:
        latency_s = time.monotonic() - started
        self._log(latency_s, usage, error, trace or {})
        if self.on_call is not None:
            await self.on_call(self.tier, latency_s, usage, type(error).__name__ if error else None)

    def _retrying(self) -> AsyncRetrying:
        s = self.settings
        return AsyncRetrying(stop=stop_after_attempt(s.max_retries + 1), reraise=True,
                             wait=wait_random_exponential(multiplier=s.retry_backoff_s,
                                                          max=max(s.retry_backoff_s * 8, 0.01)),
                             retry=retry_if_exception(_retryable))

    def _request(self, messages: list[dict], stop: list[str] | None, max_tokens: int | None,
                 sampling: dict[str, Any] | None = None, budget_s: float | None = None) -> dict:
        """The request body; ``sampling`` (a request's GenerationOptions.sampling()) overrides the tier's values."""
        body: dict[str, Any] = {"model": self.model_name, "messages": messages,
                                "temperature": self.settings.temperature,
                                "max_tokens": max_tokens or self.settings.max_tokens}
        if stop:
            body["stop"] = stop
        sampling = dict(sampling or {})
        extra = {**self.settings.extra_body, **sampling.pop("extra_body", {})}
        body.update(sampling)
        if extra.get("priority") == PROGRAM_PRIORITY:
            extra["priority"] = program_priority(messages)
        elif extra.get("priority") == DEADLINE_PRIORITY:
            extra["priority"] = deadline_priority(budget_s, self.settings.timeout_s)
        body.update(extra)  # what ``extra_body`` of the typed SDK call would merge into the JSON body
        return body

    async def _attempt(self, body: dict, budget_s: float | None, trace: dict[str, Any]):
        """One HTTP attempt; ``trace`` gets its ``call_id`` (the X-Request-Id sent)."""
        trace["replica"] = url = await self._pick(trace.get("failed", set()))
        breaker = self.breaker_for(url)
        breaker.before()  # CircuitOpenError (an UpstreamError, not retried) while every replica is known down
        started = time.monotonic()
        trace["call_id"] = call_id = self._call_id()
        headers = {**self.hooks.upstream_headers(), **({REQUEST_ID_HEADER: call_id} if call_id else {})}
        stream = bool(body.get("stream"))
        options: dict[str, Any] = {"timeout": self._timeout(budget_s, stream=stream)}
        if headers:
            options["headers"] = headers
        try:
            response = await self.client_for(url).post(
                "/chat/completions", body=body, cast_to=object, options=options, stream=stream,
                stream_cls=openai.AsyncStream[object])
        except Exception as exc:
            self._judge(exc, trace)
            await self._report(started, None, exc, trace)
            raise
        except BaseException:  # cancelled: says nothing about the tier
            breaker.release()
            raise
        breaker.success()  # answered (a stream: its headers came)
        return response

    async def complete(self, messages: list[dict], *, stop: list[str] | None = None, max_tokens: int | None = None,
                       budget_s: float | None = None, sampling: dict[str, Any] | None = None) -> Completion:
        """One non-streamed chat completion (with retries); the caller counts its ``usage``."""
        started, trace = time.monotonic(), {}
        body = self._request(messages, stop, max_tokens, sampling, budget_s)
        with self._span(stream=False) as note:
            response = await self._retrying()(self._attempt, body, budget_s, trace)
            trace["upstream_id"] = response.get("id")
            choice, counts = response["choices"][0], response.get("usage") or {}
            result = Completion(choice["message"].get("content") or "", counts.get("prompt_tokens", 0),
                                counts.get("completion_tokens", 0), choice.get("finish_reason"))
            note(self._span_result(trace, result))
        await self._report(started, {"prompt_tokens": result.prompt_tokens,
                                     "completion_tokens": result.completion_tokens}, None, trace)
        return result

    async def stream(self, messages: list[dict], *, stop: list[str] | None = None, max_tokens: int | None = None,
                     budget_s: float | None = None, sampling: dict[str, Any] | None = None,
                     ) -> AsyncIterator[LLMDelta]:
        """Stream :class:`TextDelta` s, then one :class:`Finish` with the reason and the call's usage. Opening the
        stream is retried; a stream that breaks midway is not."""
        call = Completion("")  # this call's counts as the chunks come: the span and the log read them
        options = {"include_usage": True}
        if self.settings.continuous_usage_stats:
            options["continuous_usage_stats"] = True
        body = {**self._request(messages, stop, max_tokens, sampling, budget_s), "stream": True,
                "stream_options": options}
        started, trace = time.monotonic(), {}
        with self._span(stream=True) as note:
            stream = await self._retrying()(self._attempt, body, budget_s, trace)
            try:  # closing this generator closes the deltas' (and so the HTTP response) at once
                async with contextlib.aclosing(self._deltas(stream, call, trace, started)) as deltas:
                    async for delta in deltas:
                        yield delta
            finally:
                note(self._span_result(trace, call))
        await self._report(started, {"prompt_tokens": call.prompt_tokens,
                                     "completion_tokens": call.completion_tokens}, None, trace)
        yield Finish(call.finish_reason, call.usage)

    def _span(self, stream: bool):
        return self.hooks.span("llm.call", **{"sui.tier": self.tier, "gen_ai.request.model": self.model_name,
                                              "sui.stream": stream})

    @staticmethod
    def _span_result(trace: dict[str, Any], result: Completion) -> dict[str, Any]:
        return {"sui.call_id": trace.get("call_id") or "", "gen_ai.response.id": trace.get("upstream_id") or "",
                "sui.replica": urlsplit(trace["replica"]).netloc if trace.get("replica") else "",
                "gen_ai.usage.input_tokens": result.prompt_tokens,
                "gen_ai.usage.output_tokens": result.completion_tokens}

    async def _deltas(self, stream, call: Completion, trace: dict[str, Any], started: float
                      ) -> AsyncIterator[TextDelta]:
        """The stream's text deltas; ``call`` (the call's own record) counts them as they come."""
        chunks = 0
        try:
            async with stream:  # closes the HTTP response on cancellation, error or early exit
                async for chunk in stream:  # a dict per SSE event, as vLLM sent it
                    trace.setdefault("upstream_id", chunk.get("id"))
                    counts = chunk.get("usage")
                    if counts:
                        call.prompt_tokens = counts.get("prompt_tokens", 0)
                        call.completion_tokens = counts.get("completion_tokens", 0)
                    if choices := chunk.get("choices"):
                        call.finish_reason = choices[0].get("finish_reason") or call.finish_reason
                        delta = (choices[0].get("delta") or {}).get("content") or ""
                        if delta:
                            chunks += 1
                            yield TextDelta(delta, call.completion_tokens
                                            if self.settings.continuous_usage_stats and counts else chunks)
        except GeneratorExit:  # the caller stopped reading (e.g. the answer reached its cap): logged, then closed
            self._log(time.monotonic() - started, {"prompt_tokens": call.prompt_tokens,
                                                    "completion_tokens": call.completion_tokens}, None, trace,
                      status="closed_by_caller")
            raise
        except Exception as exc:
            self._judge(exc, trace)  # a stream that broke midway: the replica may be going down
            await self._report(started, None, exc, trace)
            raise

    async def truncate_to_tokens(self, text: str, cap: int, timeout_s: float = 2.0) -> tuple[str, int]:
        """(``text`` cut to ``cap`` tokens of this tier's tokenizer, its token count), with vLLM's /tokenize and
        /detokenize; when the tier cannot tokenize (it may be the tier that is down), ``cap`` characters and their
        character count: an approximation. Uses the client's pool: a new ``httpx.AsyncClient`` per call built an
        SSL context each time (py-spy: 2.5% of a loaded replica's event loop)."""
        root = self.current_url().removesuffix("/v1")
        model = self.settings.model
        try:
            tokens = (await self.http.post(f"{root}/tokenize", timeout=timeout_s,
                                           json={"model": model, "prompt": text, "add_special_tokens": False})
                      ).raise_for_status().json()["tokens"]
            if len(tokens) <= cap:
                return text, len(tokens)
            cut = (await self.http.post(f"{root}/detokenize", timeout=timeout_s,
                                        json={"model": model, "tokens": tokens[:cap]})
                   ).raise_for_status().json()["prompt"]
            return cut, cap
        except Exception:  # noqa: BLE001 - the upstream may be the thing that is down
            return text[:cap], len(text[:cap])

    async def ready(self, timeout_s: float = 2.0) -> bool:
        """True when the tier serves this client's model name (``GET /v1/models`` lists it) and answers a 1-token
        completion within ``timeout_s``: a server that is up with other names, or up but stuck, is not ready.
        With replicas: when at least one of them is (the router skips the others by their breakers)."""
        urls = await self.endpoints.current()
        return any(await asyncio.gather(*(self._replica_ready(url, timeout_s) for url in urls)))

    async def _replica_ready(self, url: str, timeout_s: float) -> bool:
        client = self.client_for(url)
        try:
            models = await client.models.list(timeout=timeout_s)
            if self.model_name not in {m.id for m in models.data}:
                return False
            await client.chat.completions.create(
                model=self.model_name, messages=[{"role": "user", "content": "ping"}], max_tokens=1,
                temperature=0, timeout=timeout_s)
            return True
        except Exception:  # noqa: BLE001 - readiness is a yes/no question
            return False

    async def aclose(self) -> None:
        await self.client.close()

"""The ingress's ASGI middleware, all of it, and the order it runs in (written here once).

A request meets, from the outside in::

    Ray's proxy (one per node)   FrontDoor              /health answered here; a malformed X-Request-Id -> 400;
                                                        Ray's own plain-text refusals -> OpenAI's error format
    the replica's app            RequestMetricsMiddleware  counts every response once + the `request` log line
                                 RequestIdMiddleware       the id (client's or ours); a malformed one -> 400
                                 TracingMiddleware         the server span (deployments/tracing.py; when on)
                                 GuardMiddleware           /v1/*: drain 503, key 401, body 413, limits 429
                                 FastAPI's routes          deployments/api_router.py

Why this order: the counter is outermost so that every answer below it — the request-id 400s, the guard's
refusals, validation 400s, 404/405, disconnects — is counted like any other response; the request id comes next,
so every layer inside it (the span, the guard's refusals, the handler's log lines and its vLLM calls) carries
the id; the span sits outside the guard so that its refusals are traced too. :func:`install` adds them in this
order; :func:`proxy_middlewares` is Ray's proxy hook. Every layer is pure ASGI (streams and disconnects pass
through untouched), keeps its state on the one request context (deployments/request_context.py) and sends its
errors with deployments/errors.py's sender.

The front door, in Ray's proxy (installed through ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``, :data:`PROXY_ENV`,
set in the Ray head's environment, which the proxy inherits: ``stackctl``, the GPU benchmark and the RayService
on every Ray container, k8s/base/rayservice.yaml checked by tests/k8s), answers without waiting for a replica:

- ``GET /health``: liveness of the process that accepts the connections. Ray Serve counts every request inside a
  replica against ``max_ongoing_requests``, so a /health that went to a full replica would queue behind agent
  runs or be refused. A replica's own liveness is Ray's job (``check_health``); whether the pipeline can answer
  is ``/ready``.
- Ray's own error answers (the 429 + Retry-After of a full deployment — ``backpressure_config`` — a 503 when no
  replica is available, a 408/500 of the proxy) come as plain text; here they get OpenAI's error format. Their
  status and headers stay Ray's.
- A client's ``X-Request-Id`` is checked on every route (/health too): Ray's proxy takes it as the request id and
  echoes it, so a malformed one gets its 400 here, with an id of our own, before the proxy sees it (issue #25).

Why the proxy sheds capacity at all: the deployment's ``max_ongoing_requests`` is the replica's admission capacity
(``ApiSettings.deployment_options``), so what no replica can take the proxy refuses itself — on the 2-core stack
(40 concurrent requests against 4 runs + 8 queued) 116 of 116 refusals within 100 ms, against 4 of 112 when the
busy replica refused them; on the H200 (320 clients) 429s p50 5 ms and /health p50 1.8 ms, against 27 ms and
7.8 ms (benchmarks/results/soak/h200/NOTES.md, leases 3 and 4). The replica's guard still orders its queue and
refuses what would only time out there; per-key limits stay in the replica (they need the key ring).

Under Ray Serve the proxy also echoes the request id on every response, so the replica's app is built with
``echo_request_id=False``: one header, one value. The id is bound to the request's log context
(:func:`suiqa.logs.request_context`): every log line of the request and the X-Request-Id of its vLLM calls carry it.

Honest counts (:class:`RequestMetricsMiddleware`): every response once, by status; a client that disconnects (or
times out) before the last byte counts as 499 — also when the app raised because the client had left; an error
reported inside an already started stream counts with that error's status. Probes and scrapes (/health, /ready,
/metrics) are not traffic: not counted, not logged. Its JSON ``request`` line replaces Serve's access log.

The guard (:class:`GuardMiddleware`), for ``/v1/*`` in this order: draining (503 + Retry-After), API key (401),
body size (413, counted while reading, before JSON parsing), per-key limits (429 + Retry-After), the quality
ladder's step and admission (429 + Retry-After; deployments/admission.py). ``/health`` and ``/ready`` pass
untouched (probes carry no key and must never wait).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.admission import Gate, Shed
from deployments.auth import bearer_token
from deployments.errors import error_response
from deployments.quality_ladder import set_step
from deployments.request_context import (
    REQUEST_ID_HEADER,
    REQUEST_ID_KEY,
    RequestContext,
    bind,
    request_id_of,
    unbind,
)
from suiqa.logs import request_context

if TYPE_CHECKING:  # Ray's proxy imports this module: prometheus-client stays out of it
    from deployments.metrics import PipelineMetrics

# the `request` line keeps the logger name it is documented under (docs/observability.md)
access_log = logging.getLogger("deployments.metrics")

PROXY_ENV = {"RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "deployments.middleware:proxy_middlewares"}
HEALTH_PATH = "/health"  # the API's route prefix is "/" (ApiSettings checks it)
HEALTH_BODY = b'{"status":"ok"}'  # as the replica's own /health writes it
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
GUARDED_PREFIX = "/v1/"
OPEN_KEY_ID = "open"  # the context's api_key_id when the API runs without keys (the demo profile)
REJECT_REASONS = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 408: "request_timeout", 409: "conflict", 413: "too_large",
                  415: "unsupported_media_type", 422: "invalid_request", 429: "rate_limited"}


def install(app: Any, *, metrics: PipelineMetrics | None, gate: Gate | None, echo_request_id: bool,
            tracer: Any = None) -> None:
    """Add the replica's layers to a Starlette/FastAPI ``app`` in the order of the module docstring
    (``add_middleware`` wraps: the last added is the outermost)."""
    if gate is not None:
        app.add_middleware(GuardMiddleware, gate=gate)
    if tracer is not None:
        from deployments.tracing import TracingMiddleware

        app.add_middleware(TracingMiddleware, tracer=tracer)
    app.add_middleware(RequestIdMiddleware, echo=echo_request_id)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)


def proxy_middlewares() -> list:
    """Ray's proxy callback: the middlewares the proxy wraps its ASGI app in."""
    from starlette.middleware import Middleware

    return [Middleware(FrontDoor)]


# ---------------------------------------------------------------------------------------------------------------
# In Ray's proxy


class FrontDoor:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id, problem = request_id_of(scope["headers"])
        if problem is not None:
            response = error_response(400, problem, REQUEST_ID_HEADER, headers={REQUEST_ID_HEADER: request_id})
            await response(scope, receive, send)
        elif scope["path"] == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
            await self._health(scope, send, request_id)
        else:
            await self.app(scope, receive, _openai_errors(scope, receive, send))

    @staticmethod
    async def _health(scope: Scope, send: Send, request_id: str) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(HEALTH_BODY)).encode()),
                   (REQUEST_ID_KEY, request_id.encode("latin-1"))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": HEALTH_BODY if scope["method"] == "GET" else b""})


def _openai_errors(scope: Scope, receive: Receive, send: Send) -> Send:
    """``send`` that turns a plain-text error response (Ray's own) into OpenAI's error format; every other
    response passes through untouched, chunk by chunk."""
    held: list[Message] = []  # the start message and body chunks of a plain-text error, until its last chunk

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] >= 400 and _plain_text(message.get("headers", ())):
                held.append(message)
                return
        elif held and message["type"] == "http.response.body":
            held.append(message)
            if message.get("more_body", False):
                return
            start, text = held[0], b"".join(m.get("body", b"") for m in held[1:]).decode(errors="replace")
            held.clear()
            status, text = start["status"], text.strip()
            response = error_response(
                status, f"the API is at capacity; retry later ({text})" if status == 429 else text or f"HTTP {status}")
            kept = [(k, v) for k, v in start["headers"] if k not in (b"content-type", b"content-length")]
            response.raw_headers = kept + response.raw_headers  # Ray's status and headers stay
            await response(scope, receive, send)
            return
        await send(message)

    return sender


def _plain_text(headers) -> bool:
    return any(name == b"content-type" and value.startswith(b"text/plain") for name, value in headers)


# ---------------------------------------------------------------------------------------------------------------
# In the replica: counting, the request id, the guard


@dataclass
class RequestRecord:
    """What the counting middleware sees of one response; ``stream``, ``error_status`` and ``reason`` come from
    the request's context (the handler reports them there) when the response is done."""

    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    status: int | None = None          # the status line sent
    completed: bool = False            # the last body byte was sent
    stream: bool = False               # an SSE response was started
    error_status: int | None = None    # an error reported inside a started stream
    reason: str | None = None          # why it was refused (sui_rejected_total)
    failed: bool = False               # the app raised
    error: str | None = None           # ... this exception type (logged)
    client_gone: bool = False          # http.disconnect received, or reading/writing the connection failed

    def outcome(self) -> int:
        if self.failed and self.client_gone and self.error_status is None and (self.status or 0) < 500:
            return 499  # the app raised because the client had left (see RequestMetricsMiddleware)
        if self.failed:
            return self.error_status or (self.status if self.status and self.status >= 500 else 500)
        if not self.completed:
            return 499 if self.status is None or self.status < 500 else self.status
        return self.error_status or self.status or 500


class RequestMetricsMiddleware:
    """Counts and logs every response once (see the module docstring); makes the request's context. Outermost."""

    def __init__(self, app: ASGIApp, metrics: PipelineMetrics | None = None,
                 quiet_paths: frozenset[str] = QUIET_PATHS) -> None:
        self.app, self.metrics, self.quiet = app, metrics, quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.quiet:
            await self.app(scope, receive, send)
            return
        context = RequestContext.of(scope)
        record = RequestRecord(scope.get("method", ""), scope["path"], started=context.received_at)
        token = bind(context)

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            try:
                await send(message)
            except Exception:
                record.client_gone = True  # the connection is gone (uvicorn: OSError; starlette: ClientDisconnect)
                raise
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                record.completed = True

        async def receive_and_watch() -> Message:
            try:
                message = await receive()
            except Exception:
                # Serve's replica reads the client's messages from the proxy (http_util.ASGIReceiveProxy) and
                # re-raises any error of that call here once the proxy has dropped the request: the client left.
                # Starlette's stream listens for the disconnect, so the error escapes the app (a 500 before this).
                record.client_gone = True
                raise
            if message["type"] == "http.disconnect":
                record.client_gone = True
            return message

        if self.metrics:
            self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive_and_watch, send_and_record)
        except asyncio.CancelledError:  # under Serve: the proxy cancels the request when the client leaves
            raise
        except Exception as exc:
            record.failed, record.error = True, type(exc).__name__
            raise
        finally:
            unbind(token)
            if self.metrics:
                self.metrics.in_flight.dec()
            record.stream, record.error_status, record.reason = (
                context.stream, context.error_status, context.reject_reason)
            self._finish(record, context)

    def _finish(self, record: RequestRecord, context: RequestContext) -> None:
        status = record.outcome()
        stream = "true" if record.stream else "false"
        reason = None
        if status != 499 and (400 <= status < 500 or record.reason):
            reason = record.reason or REJECT_REASONS.get(status, "client_error")
        if self.metrics:
            self.metrics.requests.labels(str(status), stream).inc()
            if reason:
                self.metrics.rejected.labels(reason).inc()
        access_log.log(logging.WARNING if status >= 500 else logging.INFO, "request",
                       extra={"request_id": context.request_id or None, "method": record.method,
                              "path": record.path, "status": status, "stream": record.stream, "reason": reason,
                              "error": record.error,
                              "latency_ms": round((time.perf_counter() - record.started) * 1000, 1)})


class RequestIdMiddleware:
    """Puts the request id on the request's context; refuses a malformed one; with ``echo`` sets the response
    header; binds the id to the log context of everything inside it."""

    def __init__(self, app: ASGIApp, echo: bool = True) -> None:
        self.app, self.echo = app, echo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext.of(scope)
        context.request_id, problem = request_id_of(scope["headers"])
        if problem is not None:
            context.reject("invalid_request_id")
            await error_response(400, problem, REQUEST_ID_HEADER)(scope, receive, self._with_id(send, context))
            return
        with request_context(context.request_id):
            await self.app(scope, receive, self._with_id(send, context))

    def _with_id(self, send: Send, context: RequestContext) -> Send:
        if not self.echo:
            return send

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_KEY, context.request_id.encode("latin-1"))]
            await send(message)

        return send_with_id


class _BodyTooLarge(Exception):
    pass


class GuardMiddleware:
    """Everything that can refuse a ``/v1/*`` request before any work (see the module docstring), with the state
    in ``gate`` (deployments/admission.py; ``gate.keys`` empty = an open API, the demo profile)."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app, self.gate = app, gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _app_path(scope).startswith(GUARDED_PREFIX):
            await self.app(scope, receive, send)
            return
        gate = self.gate

        async def refuse(status: int, message: str, retry_after: int | None = None) -> None:
            headers = {"Retry-After": str(retry_after)} if retry_after else {}
            if status == 401:
                headers["WWW-Authenticate"] = "Bearer"
            await error_response(status, message, headers=headers)(scope, receive, send)

        if gate.draining:
            await refuse(503, "the API is shutting down; retry later", gate.retry_after_s)
            return
        if gate.keys:
            key_id = gate.keys.identify(bearer_token(scope["headers"]))
            if key_id is None:
                await refuse(401, "invalid or missing API key (send 'Authorization: Bearer <key>')")
                return
        else:
            key_id = OPEN_KEY_ID
        RequestContext.of(scope).api_key_id = key_id
        if scope["method"] != "POST":  # GET /v1/models: no body, no run
            await self.app(scope, receive, send)
            return
        try:
            receive = await self._read_body(scope, receive)
        except _BodyTooLarge:
            await refuse(413, f"the request body exceeds {gate.max_body} bytes")
            return
        refusal = gate.limiter.acquire(key_id) if gate.keys else None  # an open API has no keys to limit
        if refusal is not None:
            await refuse(429, refusal.reason, refusal.retry_after_s)
            return
        try:
            step = gate.ladder.choose(gate.admission) if gate.ladder is not None else "full"
            if step is None:
                await refuse(429, "the API is overloaded (no run slot in time, extractive lane full); retry later",
                             gate.retry_after_s)
                return
            set_step(step)
            if step == "extractive":  # no run slot: the answer is the knowledge base's evidence
                gate.ladder.extractive_in_flight += 1
                try:
                    await self.app(scope, receive, send)
                finally:
                    gate.ladder.extractive_in_flight -= 1
                return
            try:
                ticket = await gate.admission.enter()
            except Shed as shed:
                await refuse(429, str(shed), shed.retry_after_s)
                return
            try:
                await self.app(scope, receive, send)
            finally:
                gate.admission.leave(ticket)
        finally:
            if gate.keys:
                gate.limiter.release(key_id)

    async def _read_body(self, scope: Scope, receive: Receive) -> Receive:
        """The whole body, read before anything parses it (refused unread when Content-Length is too large);
        returns a ``receive`` that replays it, then passes on later messages (disconnects)."""
        limit = self.gate.max_body
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise _BodyTooLarge
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive)


def _app_path(scope: Scope) -> str:
    """The path inside the app: Serve's route prefix (``root_path``) removed, so that an app deployed under a
    prefix (the tests' probe apps) is guarded like the one at "/"."""
    path, root = scope["path"], scope.get("root_path") or ""
    return path[len(root):] if root and path.startswith(root) else path


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed

"""The ingress guard: everything that can refuse a request before any work, as one pure-ASGI middleware.

For ``/v1/*`` in this order: draining (503 + Retry-After), API key (401), body size (413, counted while reading,
before JSON parsing), per-key limits (429 + Retry-After), admission (429 + Retry-After). ``/health`` and
``/ready`` pass untouched (probes carry no key and must never wait; behind Ray's proxy the front door answers
/health before it reaches a replica: deployments/front_door.py).

Admission (:class:`Admission`): ``max_in_flight`` chat requests run at once per replica, ``max_queue`` more wait
(up to ``queue_timeout_s``, and only if their expected wait is shorter); beyond that the refusal is immediate —
measured < 10 ms in the TestClient. The same capacity is the deployment's ``max_ongoing_requests``, so Ray's proxy
refuses what no replica can hold before it reaches one (429 + Retry-After, ``backpressure_config``; the front door
gives it OpenAI's format): on a loaded machine a refusal inside the replica waits for the replica's process (on the
2-core stack 4 of 112 within 100 ms, against all of them at the proxy: README, "Production hardening"). What only a
replica can decide stays here: the per-key limits (the key ring), the order of its queue and the expected wait.

Draining (:meth:`Gate.drain`): new chat requests get 503 + Retry-After and /ready answers 503 while in-flight
streams finish (the replica's graceful shutdown waits for them).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.auth import KeyLimiter, KeyRing, bearer_token
from deployments.protocol import error_body
from deployments.quality_ladder import Ladder, set_step

log = logging.getLogger(__name__)
GUARDED_PREFIX = "/v1/"
OPEN_KEY_ID = "open"  # request.state.api_key_id when the API runs without keys (the demo profile)


class Shed(Exception):
    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Admission:
    """A bounded number of runs at once plus a bounded, time-limited wait; single event loop.

    A request that finds every slot taken is refused at once when the queue is full, or when its expected wait
    is longer than ``queue_timeout_s``: position k of the queue gets the k-th slot to free up, estimated from the
    running runs' elapsed times and the mean run time (an EWMA of the replica's finished runs). Without that
    estimate a queue sized for a light load holds requests for ``queue_timeout_s`` and then refuses them anyway:
    on the H200 soak (320 clients, 32 running + 24 queued per replica, runs of ~14 s) 429s had a median of 37 ms
    but a p99 of 10.3 s, the queue timeout. Before the first run has finished only the static bounds apply.
    """

    EWMA_WEIGHT = 0.2  # of the newest run in the mean run time

    def __init__(self, max_in_flight: int, max_queue: int, queue_timeout_s: float, retry_after_s: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_in_flight, self.max_queue = max_in_flight, max_queue
        self.queue_timeout_s, self.retry_after_s = queue_timeout_s, retry_after_s
        self._clock = clock
        self._slots = asyncio.Semaphore(max_in_flight)
        self._running: dict[int, float] = {}  # ticket -> start, oldest first
        self._tickets = itertools.count()
        self.mean_run_s: float | None = None
        self.in_flight = 0
        self.waiting = 0
        self.shed = 0

    def expected_wait_s(self, position: int) -> float | None:
        """Seconds until queue position ``position`` (1 = next) gets a slot if every run takes the mean run time;
        None before any run has finished."""
        if self.mean_run_s is None:
            return None
        rounds, index = divmod(position - 1, self.max_in_flight)
        starts = list(self._running.values())
        if index >= len(starts):
            return rounds * self.mean_run_s
        return max(0.0, self.mean_run_s - (self._clock() - starts[index])) + rounds * self.mean_run_s

    def saturated(self) -> bool:
        """Every run slot is taken, or somebody is already waiting for one."""
        return self._slots.locked() or self.waiting > 0

    def _refuse(self, message: str) -> Shed:
        self.shed += 1
        return Shed(message, self.retry_after_s)

    async def enter(self) -> int:
        """Wait for a run slot (or raise Shed); returns the ticket to give back to :meth:`leave`."""
        if self._slots.locked() or self.waiting:
            if self.waiting >= self.max_queue:
                raise self._refuse(f"the API is at capacity ({self.max_in_flight} running, {self.waiting} "
                                   "waiting); retry later")
            wait = self.expected_wait_s(self.waiting + 1)
            if wait is not None and wait > self.queue_timeout_s:
                raise self._refuse(f"the API is at capacity (a run slot expected in {wait:.0f} s, more than "
                                   f"{self.queue_timeout_s:g} s); retry later")
            self.waiting += 1
            try:
                await asyncio.wait_for(self._slots.acquire(), self.queue_timeout_s)
            except TimeoutError:
                raise self._refuse(f"no capacity within {self.queue_timeout_s:g} s; retry later") from None
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()
        self.in_flight += 1
        ticket = next(self._tickets)
        self._running[ticket] = self._clock()
        return ticket

    def leave(self, ticket: int) -> None:
        run_s = self._clock() - self._running.pop(ticket)
        self.mean_run_s = run_s if self.mean_run_s is None else (
            (1 - self.EWMA_WEIGHT) * self.mean_run_s + self.EWMA_WEIGHT * run_s)
        self.in_flight -= 1
        self._slots.release()


async def send_error(send: Send, status: int, message: str, *, param: str | None = None,
                     headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(status, message, param), ensure_ascii=False).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class Gate:
    """The guard's state, shared by the middleware and the app (``app.state.gate``: /ready, drain, metrics)."""

    def __init__(self, settings, keys: KeyRing) -> None:
        a = settings.admission
        self.keys = keys
        self.max_body = a.max_body_bytes
        self.retry_after_s = a.retry_after_s
        self.admission = Admission(a.max_in_flight, a.max_queue, a.queue_timeout_s, a.retry_after_s)
        self.limiter = KeyLimiter(a.per_key_concurrency, a.per_key_rpm, a.per_key_burst)
        self.draining = False
        ladder = getattr(settings, "quality_ladder", None)  # deployments/quality_ladder.py
        self.ladder = Ladder(ladder) if ladder is not None and ladder.enabled else None

    def drain(self) -> None:
        """Stop admitting: new chat requests get 503, /ready says not ready; in-flight requests continue."""
        self.draining = True


class GuardMiddleware:
    """The ASGI middleware (see the module docstring). ``gate.keys`` empty = an open API (the demo profile).
    Install it inside RequestIdMiddleware, so its refusals carry the request id too."""

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
            await send_error(send, status, message, headers=headers)

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
        scope.setdefault("state", {})["api_key_id"] = key_id
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

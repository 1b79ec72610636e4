"""The ingress guard's state: admission (run slots and a bounded queue), draining, the keys and their limits.
The middleware that applies it, in its place in the order, is deployments/middleware.py's GuardMiddleware.

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
import time
from collections.abc import Callable

from deployments.auth import KeyLimiter, KeyRing
from deployments.quality_ladder import Ladder


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

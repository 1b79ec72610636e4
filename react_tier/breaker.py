"""A circuit breaker per upstream LLM tier: closed → (``failures`` consecutive faults) → open: calls fail at once
for ``reset_s`` → half-open: ONE probe call goes through; its success closes the breaker, its fault opens it again.

Why: with a dead upstream every call would first spend its connect timeout and retries (~1-2 s each); under load
that is a pile of runs all waiting on the same dead server. Open, a call costs microseconds, the agent degrades
to the knowledge-base evidence at once, and the probe finds the tier again within ``reset_s`` of its return.
Only upstream faults count (connection errors, timeouts, 5xx); a 4xx is the request's fault, not the tier's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from react_tier.errors import UpstreamError


class CircuitOpenError(UpstreamError):
    """The tier's breaker is open: the call was not made."""

    def __init__(self, tier: str, retry_in_s: float) -> None:
        super().__init__(f"{tier} LLM unavailable (circuit open after repeated failures; next probe in "
                         f"{retry_in_s:.1f} s)", 503)
        self.retry_in_s = retry_in_s


class CircuitBreaker:
    def __init__(self, tier: str, failures: int = 3, reset_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tier, self.threshold, self.reset_s, self.clock = tier, failures, reset_s, clock
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_s else "open"

    @property
    def ready(self) -> bool:
        """Would :meth:`before` let a call go now (closed, or half-open with the probe slot free)? No side
        effect: the replica router asks it of every replica before it picks one."""
        if self.opened_at is None:
            return True
        return self.clock() - self.opened_at >= self.reset_s and not self.probing

    def before(self) -> None:
        """Raise CircuitOpenError unless a call may go out now (closed, or the one half-open probe)."""
        if self.opened_at is None:
            return
        waited = self.clock() - self.opened_at
        if waited < self.reset_s or self.probing:
            raise CircuitOpenError(self.tier, max(0.0, self.reset_s - waited))
        self.probing = True

    def success(self) -> None:
        self.failures, self.opened_at, self.probing = 0, None, False

    def failure(self) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.threshold:
            self.opened_at, self.probing = self.clock(), False

    def release(self) -> None:
        """A call that ended neither way (cancelled, or the request's own 4xx): free the probe slot."""
        self.probing = False

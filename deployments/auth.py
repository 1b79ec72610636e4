"""API keys (Bearer) and per-key limits of the pipeline API.

Keys come from ``SUIQA_API_API_KEYS`` and/or the secret file ``SUIQA_API_API_KEYS_FILE``: entries ``id:key`` (or a
bare key, whose id is ``key-`` + the first 8 hex digits of its SHA-256) separated by commas or newlines; ``#``
starts a comment line. Each key has an id: the id (never the key) goes into the request context
(``request.state.context.api_key_id``) for logs and metrics. A presented token is compared with every key by
``hmac.compare_digest`` (no early exit on the first match or mismatch), so the time taken says nothing about how
much of a key was right.

Per-key limits (:class:`KeyLimiter`): requests in flight and a token bucket (``rpm`` refill, ``burst`` size) per
key id. They hold per replica: with N replicas a key gets up to N times the limits (Ray Serve spreads a key's
requests over the replicas; an exact cluster-wide limit would need a shared store on every request).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from suiqa.errors import SuiqaError


@dataclass(frozen=True)
class ApiKey:
    id: str
    secret: bytes = field(repr=False)


def parse_keys(text: str) -> list[ApiKey]:
    """``id:key`` or bare keys, separated by commas or newlines; a repeated id or key is an error."""
    keys: list[ApiKey] = []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        for entry in line.split(","):
            entry = entry.strip()
            if not entry:
                continue
            key_id, sep, secret = entry.partition(":")
            if not sep:
                key_id, secret = "key-" + hashlib.sha256(entry.encode()).hexdigest()[:8], entry
            key_id, secret = key_id.strip(), secret.strip()
            if not key_id or len(secret) < 16:
                raise SuiqaError(f"API key {key_id or '?'!r}: keys need an id and at least 16 characters")
            if any(k.id == key_id or k.secret == secret.encode() for k in keys):
                raise SuiqaError(f"API key id {key_id!r} or its key is listed twice")
            keys.append(ApiKey(key_id, secret.encode()))
    return keys


class KeyRing:
    """The configured keys; :meth:`identify` maps a presented bearer token to its key id (or None)."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = list(keys)

    @classmethod
    def from_settings(cls, settings) -> KeyRing:
        """Keys of an ``ApiSettings`` (env value + secret file)."""
        text = settings.api_keys.get_secret_value() if settings.api_keys else ""
        if settings.api_keys_file is not None:
            path = Path(settings.api_keys_file)
            try:
                text += "\n" + path.read_text(encoding="utf-8")
            except OSError as exc:
                raise SuiqaError(f"cannot read the API key file {path}: {exc.strerror}") from None
        return cls(parse_keys(text))

    def __bool__(self) -> bool:
        return bool(self.keys)

    def identify(self, token: str | None) -> str | None:
        if not token:
            return None
        presented = token.encode("utf-8", "replace")
        found = None
        for key in self.keys:  # every key is compared, in constant time each
            if hmac.compare_digest(presented, key.secret):
                found = key.id
        return found


def require_keys(settings, keys: KeyRing) -> KeyRing:
    """``keys``, or a one-line error when the profile requires keys and none are configured."""
    if settings.require_api_keys and not keys:
        raise SuiqaError("this API profile requires API keys: set SUIQA_API_API_KEYS='id:key,...' or "
                         "SUIQA_API_API_KEYS_FILE=/path/to/secret (or require_api_keys: false for an open demo)")
    return keys


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive), else None."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class TokenBucket:
    """``burst`` tokens, refilled at ``rate_per_s``; :meth:`take` returns 0 (taken) or the seconds to wait."""

    def __init__(self, rate_per_s: float, burst: int, clock=time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate_per_s, burst, clock
        self.tokens, self.stamp = float(burst), clock()

    def take(self) -> float:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class Refusal:
    reason: str
    retry_after_s: int


class KeyLimiter:
    """Concurrency and rate per key id (single event loop: no locks needed)."""

    def __init__(self, concurrency: int, rpm: float, burst: int, clock=time.monotonic) -> None:
        self.concurrency, self.rate, self.burst, self.clock = concurrency, rpm / 60.0, burst, clock
        self.in_flight: dict[str, int] = {}
        self.buckets: dict[str, TokenBucket] = {}

    def acquire(self, key_id: str) -> Refusal | None:
        """None when admitted (call :meth:`release` when done), else why not and when to retry."""
        if self.in_flight.get(key_id, 0) >= self.concurrency:
            return Refusal(f"too many concurrent requests for this API key (limit {self.concurrency})", 1)
        bucket = self.buckets.get(key_id)
        if bucket is None:
            bucket = self.buckets[key_id] = TokenBucket(self.rate, self.burst, self.clock)
        wait = bucket.take()
        if wait > 0:
            return Refusal(f"rate limit for this API key reached ({self.rate * 60:g} requests/min)",
                           max(1, math.ceil(wait)))
        self.in_flight[key_id] = self.in_flight.get(key_id, 0) + 1
        return None

    def release(self, key_id: str) -> None:
        left = self.in_flight.get(key_id, 0) - 1
        if left > 0:
            self.in_flight[key_id] = left
        else:
            self.in_flight.pop(key_id, None)

"""One request's context at the ingress: one typed object on ``request.state.context``, and the request id's
one rule, one header name and one generator.

Why one object: what the ingress learns about a request is written by several layers (deployments/middleware.py
creates it and fills in the id and the API key; the chat handler says it started a stream, that a started
stream failed, or why the request was refused) and read by others (the metrics middleware counts it once, the
tracing middleware names its span). Before (issue #26) that was ``request.state.request_id``,
``request.state.api_key_id`` and the metrics middleware's record reached through ``deployments.metrics`` by the
chat handler. Handlers that are not given the request (the chat handler's ``create``/``stream`` are called with
the request id only, also outside the ingress: tests, benchmarks) find it with :func:`current_context` — None
outside a request, so they work without one.

The request id: a client's ``X-Request-Id`` (1-64 characters of letters, digits, ``-``, ``_``, ``.``; one
header) is used as is; anything else is a 400 that carries an id of our own, never the client's value; without
one, an id is made here (:func:`new_request_id`, 32 hex digits). The same rule runs in Ray's proxy (the front
door) and in the replica (deployments/middleware.py).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.types import Scope

from suiqa.logs import REQUEST_ID_HEADER  # as written in errors' `param` and in the docs

REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")  # as ASGI carries header names (lower-case bytes)
REQUEST_ID_RULE = f"{REQUEST_ID_HEADER} must be 1-64 characters of letters, digits, '-', '_', '.' (one header)"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # fullmatch: `$` would let a trailing newline through
STATE_KEY = "context"  # request.state.context


@dataclass
class RequestContext:
    """What the ingress knows about one request. The middleware sets the first three; the handlers report the
    rest through the methods below (the metrics middleware reads them when the response is done)."""

    request_id: str = ""
    api_key_id: str | None = None      # the key's id (never the key): logs and metrics
    received_at: float = field(default_factory=time.perf_counter)  # the ingress received it (perf_counter)
    stream: bool = False               # an SSE response is about to start
    error_status: int | None = None    # an error reported inside a started stream
    reject_reason: str | None = None   # why it was refused (sui_rejected_total), else derived from the status

    def mark_streaming(self) -> None:
        self.stream = True

    def stream_failed(self, status: int) -> None:
        self.error_status = status

    def reject(self, reason: str) -> None:
        self.reject_reason = reason

    @classmethod
    def of(cls, scope: Scope) -> RequestContext:
        """The scope's context, made (and put on ``request.state``) by the first layer that asks."""
        state = scope.setdefault("state", {})
        context = state.get(STATE_KEY)
        if context is None:
            context = state[STATE_KEY] = cls()
        return context


_CURRENT: ContextVar[RequestContext | None] = ContextVar("sui_request_context", default=None)


def current_context() -> RequestContext | None:
    """The context of the request being handled (None outside the ingress)."""
    return _CURRENT.get()


def received_at() -> float:
    """When the ingress received the current request (perf_counter), else now (outside a request)."""
    context = _CURRENT.get()
    return context.received_at if context is not None else time.perf_counter()


def bind(context: RequestContext):
    """Make ``context`` current for this task and the tasks it creates; returns the token for :func:`unbind`."""
    return _CURRENT.set(context)


def unbind(token) -> None:
    _CURRENT.reset(token)


def reject(reason: str) -> None:
    """Name the reason the current request is refused (no-op outside a request)."""
    context = _CURRENT.get()
    if context is not None:
        context.reject(reason)


def client_request_ids(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    return [value.decode("latin-1") for name, value in headers if name == REQUEST_ID_KEY]


def request_id_error(given: list[str]) -> str | None:
    """Why the client's X-Request-Id header(s) are refused (None: absent, or one valid value)."""
    if len(given) > 1 or any(_VALID_REQUEST_ID.fullmatch(value) is None for value in given):
        return REQUEST_ID_RULE
    return None


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str | None]:
    """The request's id and, when the client's header is refused, why: the client's one valid value, else one
    made here (never a refused value, which would be echoed)."""
    given = client_request_ids(headers)
    problem = request_id_error(given)
    return (given[0] if given and problem is None else new_request_id()), problem

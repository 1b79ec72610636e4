"""The ingress's errors, in OpenAI's format, from one sender.

Every refusal and failure the API answers with — the front door in Ray's proxy (a malformed request id, Ray's own
plain-text refusals), the middleware's (request id, key, body size, limits, admission), the routes' and the
exception handlers' — is :func:`error_response`: ``{"error": {message, type, param, code}}`` as JSON, the
status, and the headers the caller names (Retry-After, WWW-Authenticate, X-Request-Id). Before (issue #26) there
were four senders, one per ASGI layer. It is a Starlette response, so a route returns it and an ASGI layer sends
it with ``await error_response(...)(scope, receive, send)`` (it never reads ``receive``).

:func:`classify_exception` maps what a run can raise to its status: bad input 400, an upstream's own status
(502/503/504), Serve's full queue 429, the pipeline's time limit 504; anything else is a 500 with the exception's
type (and logged), never a 200.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.responses import JSONResponse

from deployments.protocol import error_body
from deployments.request_context import reject

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An HTTP error in OpenAI's error format."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


class ErrorJSONResponse(JSONResponse):
    """OpenAI's error body as ``json.dumps`` writes it (``", "`` and ``": "``: what the front door and the guard
    sent, and what a stream's in-band error sends), UTF-8."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False).encode()


def error_response(status: int, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> ErrorJSONResponse:
    """The one error answer: OpenAI's error body with ``status`` and ``headers``."""
    return ErrorJSONResponse(error_body(status, message, param), status_code=status, headers=headers)


def classify_exception(exc: BaseException) -> ApiError:
    """Map failures from the agent deployment (or Serve itself) to a clear 4xx/5xx."""
    from ray.serve.exceptions import BackPressureError

    from react_tier import AgentInputError, UpstreamError

    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AgentInputError):
        return ApiError(400, str(exc).splitlines()[0] if str(exc) else "invalid question", exc.param or "messages")
    if isinstance(exc, UpstreamError):
        return ApiError(exc.status_code, str(exc).splitlines()[0] if str(exc) else "upstream LLM tier failed")
    if isinstance(exc, BackPressureError):
        reject("queue_full")
        return ApiError(429, "the agent tier is at capacity (queue full); retry later")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return ApiError(504, "the request exceeded the pipeline's time limit")
    log.exception("unexpected error in the pipeline", exc_info=exc)
    return ApiError(500, f"internal error: {type(exc).__name__}")

"""Errors of the agent tier."""

from __future__ import annotations

from suiqa.errors import SuiqaError


class UpstreamError(SuiqaError):
    """No answer at all could be produced because the LLM upstreams failed.

    ``status_code``: 502 bad upstream response, 503 upstream unavailable, 504 upstream timeout.
    """

    def __init__(self, message: str, status_code: int = 502) -> None:
        super().__init__(message)
        self.status_code = status_code


class AgentInputError(SuiqaError, ValueError):
    """The question or the chat history is unusable (empty, too long, malformed).

    ``param``: the OpenAI request parameter at fault (for the 400 the ingress returns)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

"""Observation points for tracing and metrics. The loop calls hooks; it contains no metrics code itself.

Subclass :class:`AgentHooks` and override what you need (sync or async methods both work). A hook that raises is
logged and ignored: observability must never break a run.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from react_tier.results import AgentResult, Step

log = logging.getLogger(__name__)


class AgentHooks:
    """No-op base class."""

    async def on_run_start(self, question: str, request_id: str | None) -> None: ...

    async def on_llm_call(self, tier: str, latency_s: float, usage: dict[str, int] | None,
                          error: str | None) -> None:
        """Once per HTTP attempt (retries included); ``error`` is the exception class name or None."""

    async def on_tool_end(self, tool: str, latency_s: float, ok: bool) -> None: ...

    async def on_parse_error(self, error: str, raw_output: str) -> None: ...

    async def on_step(self, step: Step) -> None: ...

    async def on_run_end(self, result: AgentResult, latency_s: float) -> None: ...


class HookSet:
    """Fans one event out to many hooks, awaiting async ones, swallowing their errors."""

    def __init__(self, hooks: list[AgentHooks] | None = None) -> None:
        self.hooks = list(hooks or [])

    async def emit(self, name: str, *args: Any) -> None:
        for hook in self.hooks:
            try:
                outcome = getattr(hook, name)(*args)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("hook %s.%s failed", type(hook).__name__, name)

"""Observation points for tracing and metrics. The loop calls hooks; it contains no metrics or tracing code.

Subclass :class:`AgentHooks` and override what you need (sync or async methods both work). A hook that raises is
logged and ignored: observability must never break a run.

Tracing needs two things events after the fact cannot give: a scope that *encloses* a unit of work (so the
spans a unit starts inside it, and the upstream calls it makes, are its children) and headers for the upstream
calls (``traceparent``, so vLLM's own spans join). :meth:`AgentHooks.span` and
:meth:`AgentHooks.upstream_headers` are those seams; the loop opens ``agent.run``, ``react.step``, ``tool`` and
``llm.call`` (one per LLM call, retries inside). Both are no-ops here: react_tier imports no tracing library
(deployments/tracing.py implements them with OpenTelemetry).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Iterator
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

    def span(self, name: str, attributes: dict[str, Any]) -> contextlib.AbstractContextManager[Note | None]:
        """A scope around one unit of work, entered and left in the task that does it; it may yield a
        :data:`Note` that takes attributes learned inside (tokens, status)."""
        return contextlib.nullcontext()

    def upstream_headers(self) -> dict[str, str]:
        """Headers for an upstream call made now (in the current span)."""
        return {}


Note = Callable[[dict[str, Any]], None]  # attributes for the span that yielded it


class HookSet(AgentHooks):
    """Fans one event out to many hooks, awaiting async ones, swallowing their errors. It is itself an
    :class:`AgentHooks`, so the loop calls the typed methods (``on_llm_call`` is also the LLM clients' hook)."""

    def __init__(self, hooks: list[AgentHooks] | None = None) -> None:
        self.hooks = list(hooks or [])

    async def on_run_start(self, question: str, request_id: str | None) -> None:
        await self._emit("on_run_start", question, request_id)

    async def on_llm_call(self, tier: str, latency_s: float, usage: dict[str, int] | None,
                          error: str | None) -> None:
        await self._emit("on_llm_call", tier, latency_s, usage, error)

    async def on_tool_end(self, tool: str, latency_s: float, ok: bool) -> None:
        await self._emit("on_tool_end", tool, latency_s, ok)

    async def on_parse_error(self, error: str, raw_output: str) -> None:
        await self._emit("on_parse_error", error, raw_output)

    async def on_step(self, step: Step) -> None:
        await self._emit("on_step", step)

    async def on_run_end(self, result: AgentResult, latency_s: float) -> None:
        await self._emit("on_run_end", result, latency_s)

    async def _emit(self, name: str, *args: Any) -> None:
        for hook in self.hooks:
            try:
                outcome = getattr(hook, name)(*args)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("hook %s.%s failed", type(hook).__name__, name)

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Note]:  # type: ignore[override]
        """Every hook's span around the body (a hook that fails to open one is logged and skipped); yields a
        :data:`Note` for all of them."""
        notes: list[Note] = []
        with contextlib.ExitStack() as stack:
            for hook in self.hooks:
                try:
                    note = stack.enter_context(hook.span(name, attributes))
                except Exception:
                    log.exception("hook %s.span failed", type(hook).__name__)
                    continue
                if note is not None:
                    notes.append(note)
            yield lambda found: self._note(notes, found)

    @staticmethod
    def _note(notes: list[Note], attributes: dict[str, Any]) -> None:
        for note in notes:
            try:
                note(attributes)
            except Exception:
                log.exception("span note failed")

    def upstream_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for hook in self.hooks:
            try:
                headers.update(hook.upstream_headers())
            except Exception:
                log.exception("hook %s.upstream_headers failed", type(hook).__name__)
        return headers

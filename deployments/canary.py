"""The canary lane in the Serve replica: every ``canary.interval_s`` the replica replays the canary question set
through its own agent (the object that serves traffic: same knowledge base, LLM clients and models; the answer
cache off) and exports the SLIs of react_tier/canary.py as gauges, which the recording rules and alerts of
monitoring/prometheus/rules.yml watch.

Low priority: one question at a time, never more than one canary run per replica, and outside the admission
(so it cannot take a client's slot; on the 2-core stack a tiny run is ~1-3 s, so a 24-question pass adds < 4 %
of one run slot at the default 30 min interval). Off by default (``interval_s`` 0). A missing or malformed question
set stops the replica's start with the canary's one-line error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from react_tier.canary import CanaryThresholds, load_canary_set, run_canary
from react_tier.request import AgentRequest

log = logging.getLogger(__name__)


class CanarySettings(BaseModel):
    """The answer-quality canary (react_tier/canary.py; `suiqa canary`; the replica's lane)."""

    model_config = {"extra": "forbid"}

    interval_s: float = Field(0, ge=0, description="The replica replays the canary set every this many seconds "
                              "and exports sui_canary_* (0 = off).")
    questions: Path | None = Field(None, description="Canary question set (JSONL, the KB dev-set format); None: "
                                   "react_tier/canary_questions.jsonl.")
    thresholds: CanaryThresholds = Field(default_factory=CanaryThresholds)


class CanaryLane:
    def __init__(self, agent: Any, settings: CanarySettings, metrics: Any | None = None) -> None:
        self.agent, self.settings, self.metrics = agent, settings, metrics
        self.questions = load_canary_set(settings.questions)  # CanaryError at start-up, not at the first pass
        self._task: asyncio.Task | None = None
        self.last: Any = None

    async def run_once(self):
        async def ask(question: str):
            request = AgentRequest(question=question, cache="off", request_id=f"canary-{uuid.uuid4().hex[:8]}")
            return await self.agent.run(request)

        report = await run_canary(self.questions, ask, await self.agent.load_knowledge())
        self.last = report
        if self.metrics is not None:
            m = self.metrics
            m.canary_recall.set(report.recall_at_5)
            m.canary_citations.set(report.citation_validity)
            m.canary_grounding.set(report.grounding)
            m.canary_errors.set(report.errors)
            m.canary_last_run.set(time.time())
        log.info("canary", extra={**report.slis(), "failures": report.failures(self.settings.thresholds)})
        return report

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval_s)
            try:
                await self.run_once()
            except Exception:  # noqa: BLE001 - the lane must outlive one bad pass (the staleness alert sees it)
                log.exception("canary pass failed")

    def start(self) -> CanaryLane:
        if self.settings.interval_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

"""The quality ladder: under load, step an answer down before refusing it.

Today's policy is all or nothing: a request that the admission control (deployments/admission.py) expects to
wait longer than ``queue_timeout_s`` for a run slot gets a 429, everything else a full run. The ladder uses the
same estimate — the expected wait of the next queue position, from the running runs' ages and the replica's mean
run time — to choose a step:

    expected wait <= fewer_steps_after_s  -> full        (the full ReAct run)
                  <= no_draft_after_s     -> fewer_steps (max_steps lowered to ``fewer_steps``)
                  <= extractive_after_s   -> no_draft    (also no domain-model draft: one LLM call less)
    otherwise, while the extractive lane has room -> extractive (no LLM call: the knowledge base's evidence for
                                                      the question, cited, finish_reason ``degraded``)
    otherwise -> 429 + Retry-After

The first three steps still queue for a run slot (and are refused as before if their wait is beyond
``queue_timeout_s`` — the thresholds are below it); an extractive answer takes no run slot — it needs ~1 ms of
knowledge-base search and a tokenizer call — but a lane of ``extractive_max_in_flight`` so that it cannot take the
whole CPU either. Before the replica's first run has finished there is no estimate, and every request is full.

Grounded goodput (the ladder's objective): answers delivered within ``slo_s`` of the ingress receiving them that
cite at least one source the run observed and have a grounding score of at least ``min_grounding``. Exported as
``sui_goodput_total{step, outcome}`` (outcome ``grounded`` = counts toward goodput, ``late``, ``ungrounded``) and
the step of every admitted or refused request as ``sui_quality_step_total{step}``; the step is also ``sui.quality``
on the response.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel, Field, model_validator

from react_tier.request import AgentRequest
from react_tier.results import AgentResult

STEPS = ("full", "fewer_steps", "no_draft", "extractive")
_STEP: ContextVar[str] = ContextVar("sui_quality_step", default="full")


class QualityLadderSettings(BaseModel):
    """Step answers down under load before refusing (deployments/quality_ladder.py)."""

    model_config = {"extra": "forbid"}

    enabled: bool = Field(False, description="Off: today's policy (a full run or a 429).")
    fewer_steps_after_s: float = Field(2.0, ge=0, description="Expected wait above which runs get fewer steps.")
    no_draft_after_s: float = Field(4.0, ge=0, description="... and above which runs skip the domain draft.")
    extractive_after_s: float = Field(6.0, ge=0, description="... and above which the answer is extractive (the "
                                      "knowledge base's evidence, no LLM call).")
    fewer_steps: int = Field(1, ge=1, description="max_steps on the fewer_steps and no_draft steps.")
    extractive_max_in_flight: int = Field(8, ge=1, description="Extractive answers at once per replica; beyond: "
                                          "429.")
    slo_s: float = Field(8.0, gt=0, description="Latency SLO of grounded goodput (ingress to last byte).")
    min_grounding: float = Field(0.5, ge=0, le=1, description="Grounding score an answer needs to count.")

    @model_validator(mode="after")
    def _ordered(self) -> QualityLadderSettings:
        if not self.fewer_steps_after_s <= self.no_draft_after_s <= self.extractive_after_s:
            raise ValueError("quality_ladder thresholds must be ordered: fewer_steps_after_s <= no_draft_after_s "
                             "<= extractive_after_s")
        return self


class Ladder:
    """The step for the next request, from the admission's expected wait; the extractive lane's count."""

    def __init__(self, settings: QualityLadderSettings) -> None:
        self.settings = settings
        self.extractive_in_flight = 0

    def choose(self, admission: Any) -> str | None:
        """The step, or None for a 429."""
        s = self.settings
        if not admission.saturated():
            return "full"
        wait = admission.expected_wait_s(admission.waiting + 1)
        if wait is None:
            return "full"  # no estimate yet: the admission's static bounds decide
        queue_ok = admission.waiting < admission.max_queue and wait <= admission.queue_timeout_s
        if queue_ok and wait <= s.fewer_steps_after_s:
            return "full"
        if queue_ok and wait <= s.no_draft_after_s:
            return "fewer_steps"
        if queue_ok and wait <= s.extractive_after_s:
            return "no_draft"
        return "extractive" if self.extractive_in_flight < s.extractive_max_in_flight else None


def set_step(step: str) -> None:
    _STEP.set(step)


def apply_step(request: AgentRequest, settings: QualityLadderSettings, default_max_steps: int) -> AgentRequest:
    """The agent request at the step the ingress chose for it (``full``: unchanged)."""
    step = _STEP.get()
    if step == "full":
        return request
    update: dict[str, Any] = {"quality": step}
    if step in ("fewer_steps", "no_draft"):
        update["max_steps"] = min(request.max_steps or default_max_steps, settings.fewer_steps)
    return request.model_copy(update=update)


def goodput_outcome(result: AgentResult, started: float, settings: QualityLadderSettings) -> str:
    """grounded (counts toward grounded goodput) | late | ungrounded."""
    grounding = result.grounding.score if result.grounding is not None else 0.0
    if not result.citations or grounding < settings.min_grounding:
        return "ungrounded"
    return "grounded" if time.perf_counter() - started <= settings.slo_s else "late"


class LadderAgent:
    """The Agent protocol around the replica's agent: the request at the step the ingress chose (``check``), and
    each result's step and grounded-goodput outcome counted (``metrics``: PipelineMetrics or None)."""

    def __init__(self, agent: Any, settings: QualityLadderSettings, default_max_steps: int,
                 metrics: Any | None = None) -> None:
        self.agent, self.settings, self.metrics = agent, settings, metrics
        self.default_max_steps = default_max_steps

    def check(self, request: AgentRequest) -> AgentRequest:
        checked = apply_step(self.agent.check(request), self.settings, self.default_max_steps)
        if self.metrics is not None:
            self.metrics.quality_step.labels(checked.quality).inc()
        return checked

    async def run(self, request: AgentRequest) -> AgentResult:
        from react_tier.results import Done

        async for event in self.stream(request):
            if isinstance(event, Done):
                return event.result
        raise AssertionError("stream ended without a result")

    async def stream(self, request: AgentRequest):
        from deployments.request_context import received_at
        from react_tier.results import Done

        started = received_at()
        async for event in self.agent.stream(request):
            if isinstance(event, Done) and self.metrics is not None:
                outcome = goodput_outcome(event.result, started, self.settings)
                self.metrics.goodput.labels(event.result.quality, outcome).inc()
            yield event

    async def check_upstreams(self) -> dict[str, bool]:
        return await self.agent.check_upstreams()

    async def aclose(self) -> None:
        await self.agent.aclose()

"""What a run produces: the result, its steps and the streamed events (pydantic, JSON-serialisable)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

FinishReason = Literal["stop", "max_steps", "deadline", "degraded"]


class Citation(BaseModel):
    id: str
    source: str
    title: str
    text: str | None = Field(None, description="The cited passage (cut to max_citation_chars), for display.")


class Step(BaseModel):
    """One loop iteration: an agent LLM turn and the tool call it asked for (or a forced step)."""

    index: int
    thought: str = ""
    tool: str | None = None
    tool_input: dict[str, Any] | str | None = None
    observation: str | None = Field(None, description="What the model saw, cut to max_observation_chars.")
    latency_s: float = 0.0
    error: str | None = Field(None, description="Parse error, unknown tool, tool failure/timeout, LLM failure.")
    forced: bool = Field(False, description="True for steps the agent ran itself (always_search_first).")


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def add(self, other: Usage) -> None:
        """Count ``other`` (one call's usage) in this total."""
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.calls += other.calls


class SentenceCheck(BaseModel):
    """One claim sentence of an answer and its verdict (react_tier.grounding.check_sentences)."""

    text: str
    citations: list[str] = Field(default_factory=list)
    support: float = Field(0.0, description="Share of the sentence's bigrams found in its cited passages.")
    reason: Literal["uncited", "unsupported", "unknown-citation"] | None = Field(
        None, description="Why the sentence is not grounded; None: grounded (never in `Grounding.flagged`).")


class Grounding(BaseModel):
    """How far the answer's claims are backed by passages it cites (react_tier.grounding.check_grounding)."""

    score: float = Field(..., ge=0, le=1, description="Grounded claim sentences / claim sentences (1.0: none).")
    claims: int = 0
    flagged: list[SentenceCheck] = Field(default_factory=list)
    unknown_ids: list[str] = Field(default_factory=list, description="Cited ids the agent never observed.")


class AgentResult(BaseModel):
    answer: str
    citations: list[Citation] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    usage: dict[str, Usage] = Field(default_factory=dict, description="Per tier: 'domain', 'agent'.")
    finish_reason: FinishReason
    truncated: bool = Field(False, description="The answer was cut at the request's max_tokens.")
    answer_tokens: int = Field(0, description="Upstream tokens of the answer as delivered (counted per chunk).")
    grounding: Grounding | None = None
    draft: str | None = None
    request_id: str | None = None
    cache: Literal["hit", "miss", "bypass"] | None = Field(
        None, description="The answer cache's verdict (react_tier/answer_cache.py); None: no cache in front.")
    quality: Literal["full", "fewer_steps", "no_draft", "extractive"] = Field(
        "full", description="The quality ladder's step the run ran at (AgentRequest.quality).")


class StepStarted(BaseModel):
    type: Literal["step_started"] = "step_started"
    index: int


class StepFinished(BaseModel):
    type: Literal["step_finished"] = "step_finished"
    step: Step


class AnswerDelta(BaseModel):
    type: Literal["answer_delta"] = "answer_delta"
    text: str


class Done(BaseModel):
    type: Literal["done"] = "done"
    result: AgentResult


AgentEvent = Annotated[StepStarted | StepFinished | AnswerDelta | Done, Field(discriminator="type")]
Emit = Callable[[AgentEvent], None]  # where a run puts its events

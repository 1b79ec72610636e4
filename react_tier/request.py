"""What the agent accepts: :class:`AgentRequest` (the one typed seam between any front end and the ReAct loop),
the limits it is checked against (:class:`RequestLimits`, defined once, used by the agent and by the HTTP ingress
before the first byte), and the :class:`Agent` protocol that the real agent and every test double implement.

The ingress builds an AgentRequest with one function (``ChatCompletionRequest.to_agent_request()``), the way
vLLM's ``to_sampling_params()`` turns an OpenAI request into engine input; ``AgentRequest.checked(limits)`` is the
one validator: the agent runs it at the start of every run, the ingress runs it before a stream starts, and the
API tests' fake agent runs it too, so a double cannot accept what the real agent refuses.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from react_tier.errors import AgentInputError
from react_tier.results import AgentEvent, AgentResult

MAX_STOP_SEQUENCES = 4  # OpenAI's limit
QualityStep = Literal["full", "fewer_steps", "no_draft", "extractive"]
# vLLM sampling extras a client may send in extra_body; passed to the agent LLM's turns unchanged.
VLLM_SAMPLING_EXTRAS = ("top_k", "min_p", "repetition_penalty", "ignore_eos", "min_tokens")


class RequestLimits(BaseModel):
    """Input limits of one run. The ingress checks the same object before a response starts."""

    model_config = ConfigDict(extra="forbid")

    max_question_chars: int = Field(2000, gt=0, description="Longer questions are refused (400).")
    max_history_messages: int = Field(
        6, ge=0, description="Most recent prior chat turns given to the agent (older ones are left out: context).")
    max_history_chars: int = Field(16000, gt=0, description="Longer conversations are refused (400).")
    max_instructions_chars: int = Field(4000, gt=0, description="Longer system/developer instructions are refused.")
    max_steps_override: int = Field(
        20, ge=1, le=20, description="Largest per-request max_steps a client may ask for.")


class Turn(BaseModel):
    """One earlier turn of the conversation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["user", "assistant"]
    content: str


class GenerationOptions(BaseModel):
    """How the answer is generated, in OpenAI's names. None = the agent tier's configured value.

    ``max_tokens`` and ``stop`` apply to the ANSWER (the text the client receives): the pipeline counts the answer's
    upstream tokens and cuts it there (``truncated``), and cuts before the first stop string. The sampling fields
    go to every agent-model turn, since any turn may be the one that writes the final answer; they never reach the
    tool protocol's own stop words.
    """

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(None, ge=1, description="Cap on the answer's tokens (finish_reason 'length').")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    stop: list[str] = Field(default_factory=list, max_length=MAX_STOP_SEQUENCES)
    extra: dict[str, Any] = Field(default_factory=dict, description="vLLM sampling extras (top_k, min_p, ...).")

    @field_validator("stop")
    @classmethod
    def _non_empty_stops(cls, value: list[str]) -> list[str]:
        if any(not s for s in value):
            raise ValueError("stop strings must not be empty")
        return value

    @field_validator("extra")
    @classmethod
    def _known_extras(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(VLLM_SAMPLING_EXTRAS))
        if unknown:
            raise ValueError(f"unsupported sampling extras {unknown}; allowed: {list(VLLM_SAMPLING_EXTRAS)}")
        return value

    def sampling(self) -> dict[str, Any]:
        """Fields for each agent-model call (OpenAI request body names; extras go in extra_body)."""
        fields = self.model_dump(include={"temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"},
                                 exclude_none=True)
        return {**fields, **({"extra_body": dict(self.extra)} if self.extra else {})}


class AgentRequest(BaseModel):
    """One question for the agent, with the conversation so far and the caller's instructions."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., description="The last user message: what to answer.")
    history: list[Turn] = Field(default_factory=list, description="Earlier user/assistant turns, oldest first.")
    instructions: str | None = Field(
        None, description="Operator instructions (OpenAI system/developer messages) for the answer: tone, length, "
                          "language. They are shown to the agent as requirements; they never replace the tool "
                          "protocol.")
    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    max_steps: int | None = Field(None, ge=1, description="Fewer agent steps than the tier's default.")
    request_id: str | None = Field(None, max_length=64)
    user: str | None = Field(None, max_length=256, description="End-user id from the client (logs, limits).")
    quality: QualityStep = Field(
        "full", description="The quality ladder's step (deployments/quality_ladder.py): full; fewer_steps (the "
                            "ingress lowers max_steps); no_draft (no domain draft); extractive (no LLM call: the "
                            "knowledge base's evidence for the question is the answer, finish_reason degraded).")
    cache: Literal["auto", "allow", "off"] = Field(
        "auto", description="Answer cache (react_tier/answer_cache.py): auto = used unless the request asks for a "
                            "sample (temperature > 0); allow = used even then; off = always run.")

    @classmethod
    def of(cls, request: AgentRequest | str) -> AgentRequest:
        """A request as given, or a plain question."""
        return request if isinstance(request, AgentRequest) else cls(question=request)

    def checked(self, limits: RequestLimits) -> AgentRequest:
        """This request as the agent runs it — question stripped, history cut to the limit, a request id — or
        AgentInputError (naming the OpenAI parameter) for what the agent refuses."""
        question = self.question.strip()
        if not question:
            raise AgentInputError("the question (the last user message) is empty", param="messages")
        if len(question) > limits.max_question_chars:
            raise AgentInputError(f"the question has {len(question)} characters; the limit is "
                                  f"{limits.max_question_chars}", param="messages")
        if sum(len(turn.content) for turn in self.history) > limits.max_history_chars:
            raise AgentInputError(f"the conversation history exceeds {limits.max_history_chars} characters",
                                  param="messages")
        if self.instructions and len(self.instructions) > limits.max_instructions_chars:
            raise AgentInputError(f"the system/developer instructions exceed {limits.max_instructions_chars} "
                                  "characters", param="messages")
        if self.max_steps is not None and self.max_steps > limits.max_steps_override:
            raise AgentInputError(f"max_steps {self.max_steps} is above this tier's limit "
                                  f"{limits.max_steps_override}", param="sui_max_steps")
        keep = limits.max_history_messages
        history = self.history[-keep:] if keep else []
        return self.model_copy(update={"question": question, "history": history,
                                       "request_id": self.request_id or uuid.uuid4().hex[:16]})


@runtime_checkable
class Agent(Protocol):
    """What a front end (the Serve ingress, the CLI) needs from an agent. ReActAgent implements it; so does the
    API tests' fake, which runs the same :meth:`AgentRequest.checked`."""

    def check(self, request: AgentRequest) -> AgentRequest:
        """The request as the agent will run it, or AgentInputError: call before a response starts."""

    async def run(self, request: AgentRequest) -> AgentResult: ...

    def stream(self, request: AgentRequest) -> AsyncIterator[AgentEvent]: ...

    async def check_upstreams(self) -> dict[str, bool]: ...

    async def aclose(self) -> None: ...

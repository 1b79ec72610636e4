"""OpenAI-compatible request/response models of the pipeline API (the one protocol module of this tier).

Plain OpenAI clients read the standard fields; the pipeline's extras (citations, steps, finish detail) travel in
one extra field ``sui`` on the final response / final chunk, which the official client ignores (and keeps in
``model_extra``). Streams may also carry named SSE events (``event: sui.step``) when the request asks for them.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
)

from react_tier.request import MAX_STOP_SEQUENCES, VLLM_SAMPLING_EXTRAS, AgentRequest, GenerationOptions, Turn
from react_tier.results import AgentResult, Citation, FinishReason, Grounding, Step, Usage

MAX_MESSAGES = 64


ROLES_ANSWERED = ("user", "assistant")
INSTRUCTION_ROLES = ("system", "developer")


class ChatMessage(BaseModel):
    """One message. ``name`` is accepted (OpenAI's participant name) and not shown to the models."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @field_validator("tool_calls", "tool_call_id")
    @classmethod
    def _no_tool_calls(cls, value: Any) -> Any:
        if value:
            raise ValueError("tool calls are not supported: this API answers with its own tools")
        return value

    @field_validator("role")
    @classmethod
    def _no_tool_role(cls, value: str) -> str:
        if value == "tool":
            raise ValueError("role 'tool' is not supported: this API runs its tools itself (no function calling)")
        return value

    def text(self) -> str:
        """Message content as text (OpenAI content parts of type text are joined)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text":
                raise ValueError(f"unsupported content part type {part.get('type')!r}; only text is accepted")
            text = part.get("text", "")
            if not isinstance(text, str):
                raise ValueError("a text content part's text must be a string")
            parts.append(text)
        return "".join(parts)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: StrictBool = False  # JSON booleans only, as `stream`: "yes" or 1 is a 400, not true
    continuous_usage_stats: StrictBool = False

    @field_validator("continuous_usage_stats")
    @classmethod
    def _no_continuous(cls, value: bool) -> bool:
        if value:
            raise ValueError("continuous_usage_stats is not supported; use include_usage")
        return value


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str

    @field_validator("type")
    @classmethod
    def _text_only(cls, value: str) -> str:
        if value != "text":
            raise ValueError(f"response_format {value!r} is not supported: answers are cited prose (type 'text')")
        return value


# Parameters this API refuses when they ask for something (a neutral value such as n=1 or logprobs=false passes),
# with the reason the 400 gives. Everything OpenAI or vLLM defines that is not a field below is refused too
# (extra="forbid"), so no parameter is ever dropped silently.
_REFUSED: dict[str, str] = {
    "tools": "function calling is not supported: the pipeline runs its own tools",
    "tool_choice": "function calling is not supported: the pipeline runs its own tools",
    "parallel_tool_calls": "function calling is not supported",
    "functions": "function calling is not supported",
    "function_call": "function calling is not supported",
    "logprobs": "logprobs are not supported: the answer comes from several model calls",
    "top_logprobs": "logprobs are not supported",
    "logit_bias": "logit_bias is not supported: token ids differ between the pipeline's models",
    "store": "this API stores no completions",
    "metadata": "this API stores no completions (metadata is for stored ones)",
    "audio": "audio output is not supported",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "web search is not supported (the pipeline searches its own knowledge base)",
    "reasoning_effort": "reasoning_effort is not supported",
    "verbosity": "verbosity is not supported; say what you want in a system message",
    "service_tier": "service tiers are not supported",
}
_NEUTRAL = {"tool_choice": ("none",), "function_call": ("none",), "service_tier": ("auto", "default")}


class RefusesParameters(BaseModel):
    """A request whose parameters named in ``REFUSED`` pass only when they ask for nothing (null, false, 0,
    empty, or one of ``NEUTRAL[name]``); else a 400 naming the parameter with ``REFUSED[name]``."""

    REFUSED: ClassVar[dict[str, str]] = {}
    NEUTRAL: ClassVar[dict[str, tuple]] = {}

    @field_validator("*")
    @classmethod
    def _refuse(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        if name not in cls.REFUSED or value in (None, False, [], {}, 0) or value in cls.NEUTRAL.get(name, ()):
            return value
        raise ValueError(cls.REFUSED[name])


def options_need_a_stream(value: Any, info: ValidationInfo) -> Any:
    """``stream_options`` (a field declared after ``stream``) only with ``stream: true``."""
    if value is not None and info.data.get("stream") is not True:
        raise ValueError("stream_options is only allowed when stream is true")
    return value


NUMBERS = ("max_completion_tokens", "max_tokens", "temperature", "top_p", "seed", "presence_penalty",
           "frequency_penalty", "n", "top_k", "min_p", "repetition_penalty", "min_tokens", "sui_max_steps")


class ChatCompletionRequest(RefusesParameters):
    """OpenAI's chat request as this API understands it: each parameter is honoured (see README, "The pipeline
    API") or refused with a 400 that names it. :meth:`to_agent_request` is the one seam into the agent."""

    model_config = ConfigDict(extra="forbid")
    REFUSED: ClassVar[dict[str, str]] = _REFUSED
    NEUTRAL: ClassVar[dict[str, tuple]] = _NEUTRAL

    model: str
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=MAX_MESSAGES)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    max_completion_tokens: int | None = Field(None, ge=1, description="Cap on the answer's tokens.")
    max_tokens: int | None = Field(None, ge=1, description="Deprecated OpenAI name of max_completion_tokens.")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=-2**63, le=2**63 - 1, description="A 64-bit integer, as vLLM takes it.")
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    n: int | None = Field(None, ge=1)
    user: str | None = Field(None, max_length=256, description="End-user id: logged (per-user limits later).")
    modalities: list[str] | None = None
    response_format: ResponseFormat | None = None
    # vLLM sampling extras (extra_body), applied like temperature
    top_k: int | None = Field(None, ge=-1, description="vLLM: 0 or -1 = off, else at least 1.")
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0)
    ignore_eos: StrictBool | None = None
    min_tokens: int | None = Field(None, ge=0)
    # Pipeline extensions (extra_body): named `event: sui.step` SSE events; fewer agent steps than the default.
    sui_events: StrictBool = False
    sui_max_steps: int | None = Field(None, ge=1)
    # the answer cache: auto | allow (a cached answer also for temperature > 0) | off (always run)
    sui_cache: Literal["auto", "allow", "off"] = "auto"
    # Refused parameters (see _REFUSED): typed loosely so the 400 names the parameter and says why.
    tools: Any = None
    tool_choice: Any = None
    parallel_tool_calls: Any = None
    functions: Any = None
    function_call: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    logit_bias: Any = None
    store: Any = None
    metadata: Any = None
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None
    reasoning_effort: Any = None
    verbosity: Any = None
    service_tier: Any = None

    @field_validator(*NUMBERS, mode="before")
    @classmethod
    def _json_numbers(cls, value: Any) -> Any:
        """Numbers are JSON numbers, as the published schema says (deployments/request_schema.py):
        pydantic's lax mode took "5" and true as 5 and 1 (a 2.0 is the integer 2, as in JSON Schema)."""
        if isinstance(value, (str, bool)):
            raise ValueError("must be a JSON number")
        return value

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("only n=1 is supported: each answer is a whole agent run")
        return value

    @field_validator("modalities")
    @classmethod
    def _text_modality(cls, value: list[str] | None) -> list[str] | None:
        if value not in (None, ["text"]):
            raise ValueError("only the 'text' modality is supported")
        return value

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        stops = [value] if isinstance(value, str) else value
        if stops is not None and (len(stops) > MAX_STOP_SEQUENCES or any(not s for s in stops)):
            raise ValueError(f"stop takes at most {MAX_STOP_SEQUENCES} non-empty strings")
        return stops

    @field_validator("messages")
    @classmethod
    def _needs_user_turn(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if messages[-1].role != "user":
            raise ValueError("the last message must have role 'user' (the question to answer)")
        for message in messages:
            message.text()  # content parts other than text are refused here
        return messages

    # Cross-field checks as field validators of the later field (declared after the one it is compared with),
    # so the 400's `param` names it: a model validator's error has no location (issue #25: `param: null`).
    @field_validator("max_tokens")
    @classmethod
    def _one_token_cap(cls, value: int | None, info: ValidationInfo) -> int | None:
        other = info.data.get("max_completion_tokens")
        if value and other and value != other:
            raise ValueError("max_tokens and max_completion_tokens disagree; send max_completion_tokens only")
        return value

    @field_validator("stream_options")
    @classmethod
    def _options_need_a_stream(cls, value: StreamOptions | None, info: ValidationInfo) -> StreamOptions | None:
        return options_need_a_stream(value, info)

    def to_agent_request(self, request_id: str | None = None) -> AgentRequest:
        """The agent's view of this request: system/developer messages become instructions, earlier user/assistant
        messages the history, the last user message the question, sampling the generation options."""
        instructions = [m.text() for m in self.messages if m.role in INSTRUCTION_ROLES and m.text().strip()]
        turns = [Turn(role=m.role, content=m.text()) for m in self.messages[:-1] if m.role in ROLES_ANSWERED]
        extra = {k: v for k in VLLM_SAMPLING_EXTRAS if (v := getattr(self, k)) is not None}
        generation = GenerationOptions(  # max_tokens: the answer's cap (react_tier/answer_shaper.py applies it)
            max_tokens=self.max_completion_tokens or self.max_tokens, temperature=self.temperature,
            top_p=self.top_p, seed=self.seed,
            presence_penalty=self.presence_penalty, frequency_penalty=self.frequency_penalty,
            stop=self.stop or [], extra=extra)
        return AgentRequest(question=self.messages[-1].text(), history=turns,
                            instructions="\n\n".join(instructions) or None, generation=generation,
                            max_steps=self.sui_max_steps, request_id=request_id, user=self.user,
                            cache=self.sui_cache)


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class SuiExtras(BaseModel):
    """The pipeline's own view of a run, on the response (and the final stream chunk) as ``sui``; plain OpenAI
    clients ignore it. ``finish_reason`` is the pipeline's outcome; OpenAI's ``finish_reason`` on the choice is
    ``length`` when ``truncated`` and ``stop`` otherwise."""

    request_id: str | None = None
    finish_reason: FinishReason
    truncated: bool = False
    citations: list[Citation] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    draft: str | None = None
    usage: dict[str, Usage] = Field(default_factory=dict, description="Per tier: every upstream call of the run.")
    grounding: Grounding | None = Field(None, description="How far the answer's claims are backed by its citations.")
    cache: Literal["hit", "miss", "bypass"] | None = Field(
        None, description="The answer cache's verdict for this request (None: the cache is not in front).")
    quality: Literal["full", "fewer_steps", "no_draft", "extractive"] = Field(
        "full", description="The quality ladder's step this answer ran at (deployments/quality_ladder.py).")

    @classmethod
    def from_result(cls, result: AgentResult) -> SuiExtras:
        return cls.model_validate(result.model_dump(include=set(cls.model_fields)))


def openai_finish_reason(result: AgentResult) -> Literal["stop", "length"]:
    return "length" if result.truncated else "stop"


def usage_of(result: AgentResult) -> UsageInfo:
    """OpenAI usage of a run: every prompt token the pipeline spent upstream, and the answer's tokens as
    completion tokens (what max_completion_tokens caps); the per-tier detail is in ``sui.usage``."""
    prompt = sum(u.prompt_tokens for u in result.usage.values())
    return UsageInfo(prompt_tokens=prompt, completion_tokens=result.answer_tokens,
                     total_tokens=prompt + result.answer_tokens)


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: Literal["stop", "length"] = "stop"


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatCompletionChoice]
    usage: UsageInfo
    sui: SuiExtras | None = None


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatCompletionChunkChoice(BaseModel):
    index: int = 0
    delta: DeltaMessage
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionChunkChoice]
    usage: UsageInfo | None = None
    sui: SuiExtras | None = None


class ModelMeta(BaseModel):
    """What a client may want to know about the model behind the API (e.g. the web chat's tiny-model notice)."""

    profile: str | None = None
    tiny_models: bool = Field(False, description="Random-weight tiny models: the answers are noise by design.")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "sui-qa"
    sui: ModelMeta | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int | str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "internal_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    return ErrorResponse(error=ErrorInfo(message=message, type=ERROR_TYPES.get(status, "error"), param=param,
                                         code=status)).model_dump()

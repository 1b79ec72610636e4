"""OpenAI's Responses API (``POST /v1/responses``) for the pipeline: the request as this API understands it, and
the response and its items built from the ``openai`` package's own types (``openai.types.responses``), so what
the official client parses is what the server sends.

Why a translation and not a second pipeline: a Responses request becomes the chat request it means
(:meth:`ResponsesRequest.to_chat`: ``instructions`` a system message, ``input`` the messages,
``max_output_tokens`` the answer cap), which goes through the chat handler's one seam into the agent
(deployments/serving_chat.OpenAIServingChat: the model check, the agent's own limits, the run, its deadline
and metrics). Only the rendering differs: a run's steps and citations are typed output items instead of the
chat completion's ``sui`` extension (which the Response carries too, as on the chat completion):

- each step's thought: a ``reasoning`` item (``content``: one ``reasoning_text``);
- each tool call the agent ran: an ``mcp_call`` item (``server_label`` "sui", ``name`` the tool,
  ``arguments`` its JSON input, ``output`` the observation, ``error`` a tool failure) -- the Responses item for
  a tool the server ran itself, so a client never thinks it has to run it (a ``function_call`` would say so);
- the answer: a ``message`` item whose ``output_text`` has one annotation per citation marker ``[id]``: a
  ``url_citation`` for a web source, a ``file_citation`` (``file_id`` the passage id) for the knowledge base.

Refused with a 400 that names them (nothing is dropped silently): ``store: true`` and
``previous_response_id`` (this API keeps no responses: send the conversation in ``input``), tools, background
runs, structured output, reasoning options, ``include``, prompts, conversations; any field OpenAI or vLLM
defines that is not below is refused as unsupported.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, ClassVar, Literal

from openai.types.responses import (
    Response,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseUsage,
)
from openai.types.responses.response_output_item import McpCall
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationInfo,
    field_validator,
)

from deployments.protocol import (
    MAX_MESSAGES,
    ChatCompletionRequest,
    RefusesParameters,
    SuiExtras,
    options_need_a_stream,
    usage_of,
)
from react_tier.react_format import citations_in  # the one citation pattern, as the agent reads it
from react_tier.results import AgentResult, Citation, Step

MAX_INPUT_ITEMS = MAX_MESSAGES - 1  # one message of the chat request is kept for `instructions`
SERVER_LABEL = "sui"  # the mcp_call items' server: the pipeline's own tools
WEB_SOURCE = "web"  # Citation.source of a web search result (its id is the URL)

# Parameters refused when they ask for something, and why (see deployments.protocol.RefusesParameters).
REFUSED: dict[str, str] = {
    "store": "this API keeps no responses (store: true is not supported); send the whole conversation in input",
    "previous_response_id": "this API keeps no responses; send the whole conversation in input",
    "conversation": "this API keeps no conversations; send the whole conversation in input",
    "background": "background responses are not supported",
    "tools": "tools are not supported: the pipeline runs its own tools",
    "max_tool_calls": "max_tool_calls is not supported; use sui_max_steps",
    "include": "include is not supported: tool outputs are always in the mcp_call items",
    "reasoning": "reasoning options are not supported",
    "prompt": "prompt templates are not supported",
    "prompt_cache_key": "prompt_cache_key is not supported (vLLM caches prefixes by itself)",
    "top_logprobs": "logprobs are not supported: the answer comes from several model calls",
    "service_tier": "service tiers are not supported",
}
NEUTRAL: dict[str, tuple] = {"service_tier": ("auto", "default")}
# The chat request's parameter names as this API names them (for the param of a 400 from the chat handler)
PARAMS = {"messages": "input", "max_completion_tokens": "max_output_tokens"}


class InputText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["input_text", "output_text"]
    text: str


class InputMessage(BaseModel):
    """A message of ``input`` (OpenAI's EasyInputMessage): text, or text parts (joined)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["message"] | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputText]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


def _input_kind(value: Any) -> str:
    return "text" if isinstance(value, str) else "messages"


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"] = Field(..., description="Only text: answers are cited prose.")


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: TextFormat | None = None
    verbosity: Any = Field(None, description="Not supported; say what you want in instructions.")

    @field_validator("verbosity")
    @classmethod
    def _no_verbosity(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("verbosity is not supported; say what you want in instructions")
        return value


class ResponsesStreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_obfuscation: Literal[False] | None = Field(None, description="Not supported (no padding).")


class ResponsesRequest(RefusesParameters):
    """OpenAI's ``responses.create`` parameters this API honours (the rest are refused with a 400 naming them);
    :meth:`to_chat` is the one seam into the pipeline."""

    model_config = ConfigDict(extra="forbid")
    REFUSED: ClassVar[dict[str, str]] = REFUSED
    NEUTRAL: ClassVar[dict[str, tuple]] = NEUTRAL

    model: str
    input: Annotated[Annotated[str, Tag("text")]
                     | Annotated[list[InputMessage], Field(min_length=1, max_length=MAX_INPUT_ITEMS),
                                 Tag("messages")],
                     Discriminator(_input_kind)] = Field(
        ..., description="The question, or messages (the last is the user's question).")
    instructions: str | None = Field(None, description="A system message for the answer.")
    stream: StrictBool = False
    stream_options: ResponsesStreamOptions | None = None
    max_output_tokens: int | None = Field(None, ge=1, description="Cap on the answer's tokens.")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    user: str | None = Field(None, max_length=256, description="End-user id: logged.")
    safety_identifier: str | None = Field(None, max_length=256, description="End-user id (when user is unset).")
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(
        None, max_length=16, description="Echoed on the response (not stored): 16 pairs at most.")
    text: TextConfig | None = None
    truncation: Literal["disabled"] | None = Field(
        None, description="Only 'disabled': a conversation over the limits is a 400, never cut silently.")
    tool_choice: Literal["none", "auto"] | None = Field(None, description="No client tools: none or auto.")
    parallel_tool_calls: StrictBool | None = None
    sui_max_steps: int | None = Field(None, ge=1, description="Pipeline extension: fewer agent steps.")
    # Refused parameters (see REFUSED): typed loosely so the 400 names the parameter and says why.
    store: Any = None
    previous_response_id: Any = None
    conversation: Any = None
    background: Any = None
    tools: Any = None
    max_tool_calls: Any = None
    include: Any = None
    reasoning: Any = None
    prompt: Any = None
    prompt_cache_key: Any = None
    top_logprobs: Any = None
    service_tier: Any = None

    @field_validator("max_output_tokens", "temperature", "top_p", "sui_max_steps", mode="before")
    @classmethod
    def _json_numbers(cls, value: Any) -> Any:
        return ChatCompletionRequest._json_numbers(value)

    @field_validator("input")
    @classmethod
    def _ends_with_the_question(cls, value: str | list[InputMessage]) -> str | list[InputMessage]:
        if isinstance(value, list) and value[-1].role != "user":
            raise ValueError("the last input message must have role 'user' (the question to answer)")
        return value

    @field_validator("metadata")
    @classmethod
    def _short_keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value and any(len(key) > 64 for key in value):
            raise ValueError("metadata keys are at most 64 characters")
        return value

    @field_validator("stream_options")
    @classmethod
    def _options_need_a_stream(cls, value: ResponsesStreamOptions | None,
                               info: ValidationInfo) -> ResponsesStreamOptions | None:
        return options_need_a_stream(value, info)

    def to_chat(self) -> ChatCompletionRequest:
        """The chat request this one means (validated like any chat request)."""
        messages = [{"role": "system", "content": self.instructions}] if self.instructions else []
        if isinstance(self.input, str):
            messages.append({"role": "user", "content": self.input})
        else:
            messages += [{"role": m.role, "content": m.text()} for m in self.input]
        return ChatCompletionRequest(
            model=self.model, messages=messages, stream=self.stream, max_completion_tokens=self.max_output_tokens,
            temperature=self.temperature, top_p=self.top_p, user=self.user or self.safety_identifier,
            sui_max_steps=self.sui_max_steps)


# ---------------------------------------------------------------------------------------------------------------
# The response, from a run's result


def reasoning_item(step: Step, request_id: str) -> ResponseReasoningItem | None:
    if not step.thought:
        return None
    return ResponseReasoningItem(id=f"rs_{request_id}_{step.index}", type="reasoning", summary=[],
                                 content=[{"type": "reasoning_text", "text": step.thought}], status="completed")


def tool_item(step: Step, request_id: str) -> McpCall | None:
    if not step.tool:
        return None
    arguments = step.tool_input if isinstance(step.tool_input, str) else json.dumps(
        step.tool_input or {}, ensure_ascii=False)
    error = {"type": "mcp_tool_execution_error", "content": step.error} if step.error else None
    return McpCall(id=f"mcp_{request_id}_{step.index}", type="mcp_call", server_label=SERVER_LABEL,
                   name=step.tool, arguments=arguments, output=step.observation, error=error,
                   status="failed" if step.error else "completed")


def step_items(step: Step, request_id: str) -> list[ResponseReasoningItem | McpCall]:
    """A step as output items: its thought, then the tool call it made (either may be absent)."""
    return [item for item in (reasoning_item(step, request_id), tool_item(step, request_id)) if item is not None]


def annotations(answer: str, citations: list[Citation]) -> list[dict[str, Any]]:
    """One annotation per citation marker of the answer that names a cited source, in order."""
    cited = {c.id: c for c in citations}
    found = []
    for match, ids in citations_in(answer, cited):
        for citation in (cited[pid] for pid in ids if pid in cited):  # [a, b]: one annotation per cited id
            if citation.source == WEB_SOURCE:
                found.append({"type": "url_citation", "url": citation.id, "title": citation.title,
                              "start_index": match.start(), "end_index": match.end()})
            else:
                found.append({"type": "file_citation", "file_id": citation.id,
                              "filename": citation.title or citation.source, "index": match.end()})
    return found


def message_item(request_id: str, text: str, status: str, citations: list[Citation] | None = None
                 ) -> ResponseOutputMessage:
    content = [ResponseOutputText(type="output_text", text=text, logprobs=[],
                                  annotations=annotations(text, citations or []))] if status != "in_progress" else []
    return ResponseOutputMessage(id=f"msg_{request_id}", type="message", role="assistant", status=status,
                                 content=content)


def response_status(result: AgentResult) -> Literal["completed", "incomplete"]:
    return "incomplete" if result.truncated else "completed"


def response_usage(result: AgentResult) -> ResponseUsage:
    """The chat completion's usage in the Responses API's names (per-tier detail in ``sui.usage``)."""
    usage = usage_of(result)
    return ResponseUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
                         total_tokens=usage.total_tokens,
                         input_tokens_details={"cached_tokens": 0, "cache_write_tokens": 0},
                         output_tokens_details={"reasoning_tokens": 0})


def new_response(request: ResponsesRequest, request_id: str, created_at: float | None = None,
                 status: str = "in_progress", output: list | None = None, **fields: Any) -> Response:
    """The Response object, echoing the request's settings as OpenAI does."""
    return Response(
        id=f"resp_{request_id}", object="response", created_at=created_at or time.time(), model=request.model,
        status=status, output=output or [], error=fields.pop("error", None),
        incomplete_details=fields.pop("incomplete_details", None), instructions=request.instructions,
        max_output_tokens=request.max_output_tokens, metadata=request.metadata or {},
        temperature=request.temperature, top_p=request.top_p, user=request.user,
        parallel_tool_calls=bool(request.parallel_tool_calls), tool_choice=request.tool_choice or "auto", tools=[],
        store=False, background=False, previous_response_id=None, truncation="disabled",
        text={"format": {"type": "text"}}, **fields)


def final_response(request: ResponsesRequest, request_id: str, result: AgentResult,
                   created_at: float | None = None, steps_sent: list | None = None) -> Response:
    """The finished response: the steps' items (``steps_sent``: those a stream sent), the answer with its
    citations, usage, and ``sui``."""
    status = response_status(result)
    output: list[Any] = list(steps_sent) if steps_sent is not None else [
        item for step in result.steps for item in step_items(step, request_id)]
    output.append(message_item(request_id, result.answer, status, result.citations))
    return new_response(request, request_id, created_at, status=status, output=output,
                        incomplete_details={"reason": "max_output_tokens"} if status == "incomplete" else None,
                        completed_at=time.time(), usage=response_usage(result),
                        sui=SuiExtras.from_result(result).model_dump(mode="json"))


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON of an openai type as sent: the fields set (nulls OpenAI sends included), no unset defaults."""
    return model.model_dump(mode="json", exclude_unset=True, warnings=False)

"""The Responses API handler: a Responses request through the chat handler's seam (``prepare``, ``run``,
``events``: the same model check, limits, deadline, metrics and request id), rendered as a Response or as its
typed SSE events. No agent logic here and no second pipeline (deployments/responses_protocol.py says why).

The stream, as OpenAI's: ``response.created``, ``response.in_progress``; per step ``response.output_item.added``
/ ``.done`` of its ``reasoning`` and ``mcp_call`` items as the step ends; the answer's ``message`` item
(``output_item.added``, ``content_part.added``, ``output_text.delta`` per chunk, ``output_text.done``,
``content_part.done``, ``output_item.done``); then ``response.completed`` (``response.incomplete`` when the
answer was cut at ``max_output_tokens``) with the whole Response. A failure after the first byte is an
``error`` event and ``response.failed`` (OpenAI's in-band form; the request is counted with its status).
Every event is an ``openai.types.responses`` type, numbered by ``sequence_number`` from 0.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from pydantic import BaseModel

from deployments.errors import ApiError
from deployments.protocol import ERROR_TYPES
from deployments.responses_protocol import (
    PARAMS,
    ResponsesRequest,
    dump,
    final_response,
    message_item,
    new_response,
    step_items,
)
from deployments.serving_chat import OpenAIServingChat, mark_streaming, stream_failure
from react_tier.request import AgentRequest
from react_tier.results import AnswerDelta, Done, StepFinished

# ResponseError.code is one of OpenAI's codes: an overload is "rate_limit_exceeded", anything else on our side
# "server_error" (the `error` event before response.failed carries this API's own type and message)
FAILED_CODES = {429: "rate_limit_exceeded"}


class OpenAIServingResponses:
    """``POST /v1/responses`` over :class:`OpenAIServingChat` (one handler, one settings tree)."""

    def __init__(self, chat: OpenAIServingChat) -> None:
        self.chat = chat

    def prepare(self, request: ResponsesRequest, request_id: str) -> AgentRequest:
        """The agent request, or ApiError naming this API's parameter (``input``, not ``messages``)."""
        try:
            return self.chat.prepare(request.to_chat(), request_id)
        except ApiError as exc:
            raise ApiError(exc.status, exc.message, PARAMS.get(exc.param or "", exc.param)) from None

    async def create(self, request: ResponsesRequest, request_id: str) -> dict[str, Any]:
        agent_request = self.prepare(request, request_id)
        created_at = time.time()
        result = await self.chat.run(agent_request)
        return dump(final_response(request, request_id, result, created_at))

    async def stream(self, request: ResponsesRequest, request_id: str) -> AsyncIterator[str]:
        """SSE lines; everything that can refuse the request runs before the first byte."""
        agent_request = self.prepare(request, request_id)
        mark_streaming()
        return self._stream(request, request_id, agent_request)

    async def _stream(self, request: ResponsesRequest, request_id: str,
                      agent_request: AgentRequest) -> AsyncIterator[str]:
        out = _EventWriter()
        created_at = time.time()
        yield out.event(ResponseCreatedEvent, type="response.created",
                        response=new_response(request, request_id, created_at))
        yield out.event(ResponseInProgressEvent, type="response.in_progress",
                        response=new_response(request, request_id, created_at))
        message_index: int | None = None
        try:
            async with contextlib.aclosing(self.chat.events(agent_request)) as events:
                async for item in events:
                    if isinstance(item, StepFinished):
                        for output in step_items(item.step, request_id):
                            for line in out.whole_item(output):
                                yield line
                    elif isinstance(item, AnswerDelta | Done) and message_index is None:
                        message_index = out.next_index
                        for line in out.open_message(request_id):
                            yield line
                    if isinstance(item, AnswerDelta) and item.text:
                        yield out.event(ResponseTextDeltaEvent, type="response.output_text.delta",
                                        item_id=f"msg_{request_id}", output_index=message_index, content_index=0,
                                        delta=item.text, logprobs=[])
                    elif isinstance(item, Done):
                        response = final_response(request, request_id, item.result, created_at, out.items)
                        for line in out.close_message(response.output[-1], message_index):
                            yield line
                        kind = ResponseCompletedEvent if response.status == "completed" else ResponseIncompleteEvent
                        yield out.event(kind, type=f"response.{response.status}", response=response)
        except Exception as exc:  # noqa: BLE001 - the status line is sent: report in-band, OpenAI-style
            err = stream_failure(exc)
            yield out.event(ResponseErrorEvent, type="error", code=ERROR_TYPES.get(err.status, "error"),
                            message=err.message, param=err.param)
            failed = new_response(request, request_id, created_at, status="failed", error={
                "code": FAILED_CODES.get(err.status, "server_error"), "message": err.message})
            yield out.event(ResponseFailedEvent, type="response.failed", response=failed)


class _EventWriter:
    """Numbers the events (``sequence_number``) and the output items (``output_index``)."""

    def __init__(self) -> None:
        self.sequence = 0
        self.next_index = 0
        self.items: list[BaseModel] = []  # the steps' items sent, in order (the final Response's output)

    def event(self, kind: type[BaseModel], **fields: Any) -> str:
        event = kind(sequence_number=self.sequence, **fields)
        self.sequence += 1
        return f"event: {fields['type']}\ndata: {_json(event)}\n\n"

    def whole_item(self, item: BaseModel) -> list[str]:
        """A finished item (a step's): added, then done."""
        index, self.next_index = self.next_index, self.next_index + 1
        self.items.append(item)
        started = item.model_copy(update={"status": "in_progress"})
        return [self.event(ResponseOutputItemAddedEvent, type="response.output_item.added", item=started,
                           output_index=index),
                self.event(ResponseOutputItemDoneEvent, type="response.output_item.done", item=item,
                           output_index=index)]

    def open_message(self, request_id: str) -> list[str]:
        index, self.next_index = self.next_index, self.next_index + 1
        return [self.event(ResponseOutputItemAddedEvent, type="response.output_item.added",
                           item=message_item(request_id, "", "in_progress"), output_index=index),
                self.event(ResponseContentPartAddedEvent, type="response.content_part.added",
                           item_id=f"msg_{request_id}", output_index=index, content_index=0,
                           part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})]

    def close_message(self, message: Any, index: int) -> list[str]:
        part = message.content[0]
        where = {"item_id": message.id, "output_index": index, "content_index": 0}
        return [self.event(ResponseTextDoneEvent, type="response.output_text.done", text=part.text, logprobs=[],
                           **where),
                self.event(ResponseContentPartDoneEvent, type="response.content_part.done", part=part, **where),
                self.event(ResponseOutputItemDoneEvent, type="response.output_item.done", item=message,
                           output_index=index)]


def _json(model: BaseModel) -> str:
    return json.dumps(dump(model), ensure_ascii=False, separators=(",", ":"))

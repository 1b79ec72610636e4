"""The chat request in the OpenAPI document as the server accepts it, not as the pydantic types allow.

Why (issue #25): FastAPI's document came from the request model's field types, and the validators behind them
refuse much of what the types allow: role ``tool``, ``tool_calls``, any ``model``, ``n`` other than 1, any
value of a refused parameter, content parts other than text, a conversation that does not end with the
question. schemathesis' positive generation (requests valid by the document) never reached a 200: its
positive_data_acceptance check (ST202) fails on every one, which is why the fuzz test had left it out.

:func:`publish` rewrites the request schema so that every request it allows is accepted, and (where JSON
Schema can say it) every request it forbids is refused: each field's own rule exactly (the served model name,
``n`` 1, the neutral values of each refused parameter, stop strings, text parts, ``sui_max_steps`` up to the
limit, ``min_tokens`` up to the agent tier's tokens per call, a 64-bit ``seed``, ``stream_options`` only with
``stream: true``); the rules about the whole conversation as far as JSON Schema can say them, more strictly
where it cannot (tests/unit/deployments/test_request_schema.py lists where):

- the last message is the user's question: JSON Schema has no "last item", so ``messages`` is also one of
  ``MAX_MESSAGES`` tuples, each ``true`` n-1 times (any message, by ``items``) and then the question (~39 KB
  of document in all);
- the question is a string of 1 to ``limits.max_question_chars`` characters with one that is not whitespace
  (the server also takes text parts, and strips the question before it counts it);
- an earlier message is at most the total its kind may have (``max_history_chars`` for user/assistant turns,
  ``max_instructions_chars`` for system/developer ones): the server limits their sums, which JSON Schema
  cannot state; a conversation whose turns each fit but not together is still a 400 (the descriptions say so);
- ``max_tokens`` and ``max_completion_tokens`` are not both given (the server also takes two equal values).

With it, schemathesis with all of its checks passes (tried at 300 generated cases a route, valid and invalid,
on the default limits and on the tiny profile's; the unit test runs 60 and 30).
"""

from __future__ import annotations

from typing import Any

from deployments.protocol import _NEUTRAL, _REFUSED, MAX_MESSAGES
from deployments.responses_protocol import MAX_INPUT_ITEMS, NEUTRAL, REFUSED
from react_tier.request import MAX_STOP_SEQUENCES, RequestLimits

SCHEMAS = "#/components/schemas/"
NULL = {"type": "null"}
# one character that str.strip() keeps: the complement of Python's whitespace (str.isspace), spelled out,
# since JSON Schema's \s (ECMA 262) and Python's differ (\x1c-\x1f and \x85 are space to Python only, \ufeff
# to ECMA only)
NOT_SPACE = r"[^\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
FALSY = [None, False, 0, [], {}]  # what the server lets through for a refused parameter (nothing asked for)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, NULL]}


CHAT_PART = {"type": "object", "required": ["type"], "properties": {"type": {"const": "text"}}}
CHAT_FIELDS = {"name": _nullable({"type": "string"}), "tool_calls": _nullable({"type": "array", "maxItems": 0}),
               "tool_call_id": _nullable({"type": "string", "maxLength": 0})}


def _content(max_chars: int, what: str, part: dict[str, Any], nullable: bool) -> dict[str, Any]:
    text = {"type": "string", "maxLength": max_chars}
    part = {**part, "properties": {**part["properties"], "text": text}}
    return {"anyOf": [text, {"type": "array", "items": part}] + ([NULL] if nullable else []),
            "description": f"Text, or text parts (joined). At most {max_chars} characters: the limit of all "
                           f"{what} together."}


def _message(roles: list[str], content: dict[str, Any], description: str,
             fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["role"], "description": description,
            "properties": {"role": {"enum": roles}, "content": content, **fields}}


def question_schema(limits: RequestLimits) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": limits.max_question_chars, "pattern": NOT_SPACE,
            "description": "The question: not blank, at most limits.max_question_chars characters."}


def message_schemas(limits: RequestLimits, prefix: str = "", part: dict[str, Any] = CHAT_PART,
                    fields: dict[str, Any] = CHAT_FIELDS, nullable: bool = True) -> dict[str, dict[str, Any]]:
    """The three kinds of message (``prefix`` + HistoryMessage, InstructionMessage, QuestionMessage) with
    ``part`` as a text part's schema and ``fields`` as the message's other fields."""
    return {
        prefix + "HistoryMessage": _message(
            ["user", "assistant"], _content(limits.max_history_chars, "earlier turns", part, nullable),
            "An earlier turn (the most recent limits.max_history_messages reach the models).", fields),
        prefix + "InstructionMessage": _message(
            ["system", "developer"],
            _content(limits.max_instructions_chars, "system/developer messages", part, nullable),
            "Operator instructions for the answer.", fields),
        prefix + "QuestionMessage": {**_message(["user"], question_schema(limits),
                                                "The last message: the user's question.", fields),
                                     "required": ["role", "content"]},
    }


def messages_schema(prefix: str = "", max_items: int = MAX_MESSAGES) -> dict[str, Any]:
    """Any message anywhere, and one tuple per length that pins its last item to the question (an item left
    ``true`` in a tuple is checked by ``items`` alone)."""
    question = {"$ref": SCHEMAS + prefix + "QuestionMessage"}
    tuples = [{"minItems": n, "maxItems": n, "prefixItems": [True] * (n - 1) + [question]}
              for n in range(1, max_items + 1)]
    return {"type": "array", "minItems": 1, "maxItems": max_items,
            "items": {"anyOf": [{"$ref": SCHEMAS + prefix + name}
                                for name in ("HistoryMessage", "InstructionMessage", "QuestionMessage")]},
            "anyOf": tuples, "description": f"1 to {max_items} messages; the last is the user's question."}


def refused(name: str, reasons: dict[str, str] = _REFUSED, neutral: dict[str, tuple] = _NEUTRAL
            ) -> dict[str, Any]:
    return {"enum": FALSY + list(neutral.get(name, ())),
            "description": f"Refused unless it asks for nothing: {reasons[name]}."}


OPTIONS_NEED_A_STREAM = {
    "anyOf": [{"not": {"required": ["stream_options"]}}, {"properties": {"stream_options": NULL}},
              {"required": ["stream"], "properties": {"stream": {"const": True}}}],
    "description": "stream_options only with stream: true."}


def publish(document: dict[str, Any], served_model_name: str, limits: RequestLimits,
            call_max_tokens: int) -> None:
    """Rewrite ``document``'s ChatCompletionRequest (and add the message schemas) in place.
    ``call_max_tokens``: the agent tier's tokens per call (``min_tokens`` may not exceed it: vLLM refuses
    that call)."""
    schemas = document["components"]["schemas"]
    schemas.pop("ChatMessage", None)
    schemas.update(message_schemas(limits))
    request = schemas["ChatCompletionRequest"]
    props = request["properties"]
    props["model"] = {"enum": [served_model_name],
                      "description": "The model this API serves (GET /v1/models)."}
    props["messages"] = messages_schema()
    stop = {"type": "string", "minLength": 1}
    props["stop"] = {"anyOf": [stop, {"type": "array", "items": stop, "maxItems": MAX_STOP_SEQUENCES}, NULL]}
    props["n"] = {"enum": [1, None], "description": "Only 1: each answer is a whole agent run."}
    props["modalities"] = {"enum": [["text"], None]}
    props["sui_max_steps"] = _nullable({"type": "integer", "minimum": 1,
                                        "maximum": limits.max_steps_override})
    props["min_tokens"] = _nullable({"type": "integer", "minimum": 0, "maximum": call_max_tokens})
    # pydantic writes bounds beyond 2**53 as "ge"/"le", which no JSON Schema validator reads
    props["seed"] = _nullable({"type": "integer", "minimum": -2**63, "maximum": 2**63 - 1})
    for name in _REFUSED:
        props[name] = refused(name)
    stream_options = schemas["StreamOptions"]["properties"]
    stream_options["continuous_usage_stats"] = {"const": False,
                                                "description": "Not supported; use include_usage."}
    schemas["ResponseFormat"]["properties"]["type"] = {"const": "text"}
    request["allOf"] = [
        OPTIONS_NEED_A_STREAM,
        {"anyOf": [{"not": {"required": [name]}} for name in ("max_tokens", "max_completion_tokens")]
         + [{"properties": {name: NULL}} for name in ("max_tokens", "max_completion_tokens")],
         "description": "max_completion_tokens, or its deprecated name max_tokens: not both."},
    ]


INPUT_PART = {"type": "object", "required": ["type", "text"], "additionalProperties": False,
              "properties": {"type": {"enum": ["input_text", "output_text"]}}}
INPUT_FIELDS = {"type": {"enum": ["message", None]}}


def publish_responses(document: dict[str, Any], served_model_name: str, limits: RequestLimits) -> None:
    """Rewrite ``document``'s ResponsesRequest as the server accepts it (the chat request's rules in the
    Responses API's names: ``input`` a question or messages ending with it, ``instructions`` a system message)
    and add the Response it answers with (the openai package's own item types).

    As the chat request's, the document states each message's limit, not their sums (JSON Schema cannot): a
    conversation whose messages each fit but not together is a 400 (the descriptions say so)."""
    schemas = document["components"]["schemas"]
    for name in ("InputMessage", "InputText", "TextFormat"):
        schemas.pop(name, None)
    messages = message_schemas(limits, "Input", INPUT_PART, INPUT_FIELDS, nullable=False)
    for message in messages.values():
        message["required"] = ["role", "content"]  # an input message has content
    schemas.update(messages)
    request = schemas["ResponsesRequest"]
    props = request["properties"]
    props["model"] = {"enum": [served_model_name], "description": "The model this API serves (GET /v1/models)."}
    props["input"] = {"anyOf": [question_schema(limits), messages_schema("Input", MAX_INPUT_ITEMS)],
                      "description": "The question, or messages ending with it."}
    props["instructions"] = _nullable({"type": "string", "maxLength": limits.max_instructions_chars,
                                       "description": "A system message: with the system/developer messages "
                                                      "of input, at most limits.max_instructions_chars."})
    props["sui_max_steps"] = _nullable({"type": "integer", "minimum": 1, "maximum": limits.max_steps_override})
    props["metadata"] = _nullable({"type": "object", "maxProperties": 16, "propertyNames": {"maxLength": 64},
                                   "additionalProperties": {"type": "string", "maxLength": 512}})
    props["text"] = _nullable({"type": "object", "additionalProperties": False, "properties": {
        "format": _nullable({"type": "object", "additionalProperties": False, "required": ["type"],
                             "properties": {"type": {"const": "text"}}}),
        "verbosity": NULL}})
    for name in REFUSED:
        props[name] = refused(name, REFUSED, NEUTRAL)
    request["allOf"] = [OPTIONS_NEED_A_STREAM]
    schemas.update(response_schemas())


def response_schemas() -> dict[str, dict[str, Any]]:
    """``Response`` as this API sends it: its output items (message, reasoning, mcp_call) and usage are the
    openai package's types, published under ``OpenAI``-prefixed names; ``sui`` is the chat completion's."""
    from openai.types.responses import (
        ResponseOutputMessage,
        ResponseReasoningItem,
        ResponseUsage,
    )
    from openai.types.responses.response_output_item import McpCall
    from pydantic.json_schema import models_json_schema

    models = (ResponseOutputMessage, ResponseReasoningItem, McpCall, ResponseUsage)
    refs, top = models_json_schema([(m, "serialization") for m in models], ref_template=SCHEMAS + "OpenAI{model}")
    found = {f"OpenAI{name}": schema for name, schema in top.get("$defs", {}).items()}
    item = {"anyOf": [refs[(m, "serialization")] for m in models[:3]]}
    text = {"type": "string"}
    found["Response"] = {
        "type": "object", "required": ["id", "object", "created_at", "model", "status", "output"],
        "properties": {"id": text, "object": {"const": "response"}, "created_at": {"type": "number"},
                       "model": text, "status": {"enum": ["completed", "incomplete"]},
                       "output": {"type": "array", "items": item}, "usage": refs[(ResponseUsage, "serialization")],
                       "error": NULL, "sui": {"$ref": SCHEMAS + "SuiExtras"}},
        "description": "An openai.types.responses.Response: its fields as OpenAI's; the steps' reasoning and "
                       "mcp_call items, then the answer's message; `sui` as on the chat completion."}
    return found

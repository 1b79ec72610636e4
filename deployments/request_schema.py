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
where it cannot (tests/unit/test_hardening_schema.py lists where):

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


def _content(max_chars: int, what: str) -> dict[str, Any]:
    text = {"type": "string", "maxLength": max_chars}
    part = {"type": "object", "required": ["type"],
            "properties": {"type": {"const": "text"}, "text": text}}
    return {"anyOf": [text, {"type": "array", "items": part}, NULL],
            "description": f"Text, or text parts (joined). At most {max_chars} characters: the limit of all "
                           f"{what} together."}


def _message(roles: list[str], content: dict[str, Any], description: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["role"], "description": description,
            "properties": {"role": {"enum": roles}, "content": content, "name": _nullable({"type": "string"}),
                           "tool_calls": _nullable({"type": "array", "maxItems": 0}),
                           "tool_call_id": _nullable({"type": "string", "maxLength": 0})}}


def message_schemas(limits: RequestLimits) -> dict[str, dict[str, Any]]:
    question = {"type": "string", "minLength": 1, "maxLength": limits.max_question_chars,
                "pattern": NOT_SPACE,
                "description": "The question: not blank, at most limits.max_question_chars characters."}
    return {
        "HistoryMessage": _message(["user", "assistant"], _content(limits.max_history_chars, "earlier turns"),
                                   "An earlier turn (the most recent limits.max_history_messages reach the "
                                   "models)."),
        "InstructionMessage": _message(["system", "developer"],
                                       _content(limits.max_instructions_chars, "system/developer messages"),
                                       "Operator instructions for the answer."),
        "QuestionMessage": {**_message(["user"], question, "The last message: the user's question."),
                            "required": ["role", "content"]},
    }


def messages_schema() -> dict[str, Any]:
    """Any message anywhere, and one tuple per length that pins its last item to the question (an item left
    ``true`` in a tuple is checked by ``items`` alone)."""
    question = {"$ref": SCHEMAS + "QuestionMessage"}
    tuples = [{"minItems": n, "maxItems": n, "prefixItems": [True] * (n - 1) + [question]}
              for n in range(1, MAX_MESSAGES + 1)]
    return {"type": "array", "minItems": 1, "maxItems": MAX_MESSAGES,
            "items": {"anyOf": [{"$ref": SCHEMAS + name} for name in ("HistoryMessage", "InstructionMessage",
                                                                       "QuestionMessage")]},
            "anyOf": tuples, "description": f"1 to {MAX_MESSAGES} messages; the last is the user's question."}


def _refused(name: str) -> dict[str, Any]:
    return {"enum": FALSY + list(_NEUTRAL.get(name, ())),
            "description": f"Refused unless it asks for nothing: {_REFUSED[name]}."}


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
        props[name] = _refused(name)
    stream_options = schemas["StreamOptions"]["properties"]
    stream_options["continuous_usage_stats"] = {"const": False,
                                                "description": "Not supported; use include_usage."}
    schemas["ResponseFormat"]["properties"]["type"] = {"const": "text"}
    request["allOf"] = [
        {"anyOf": [{"not": {"required": ["stream_options"]}}, {"properties": {"stream_options": NULL}},
                   {"required": ["stream"], "properties": {"stream": {"const": True}}}],
         "description": "stream_options only with stream: true."},
        {"anyOf": [{"not": {"required": [name]}} for name in ("max_tokens", "max_completion_tokens")]
         + [{"properties": {name: NULL}} for name in ("max_tokens", "max_completion_tokens")],
         "description": "max_completion_tokens, or its deprecated name max_tokens: not both."},
    ]

"""The two spellings of a request the OpenAPI document leaves out on purpose, for schemathesis' negative check.

deployments/request_schema.py publishes one spelling of each rule and, where JSON Schema cannot state the
server's rule, the stricter one (tests/unit/deployments/test_request_schema.py pins where): the question as
text parts (the server joins them; JSON Schema cannot bound the joined text's length or blankness) and equal
``max_tokens`` and ``max_completion_tokens`` (JSON Schema cannot compare two fields). A body in one of those
spellings violates the document and is still a valid request, so schemathesis' negative_data_rejection (ST201)
reported it as "schema-violating request accepted" (CI, 2026-12-07: a conversation whose question was six
text parts). :func:`documented_equivalent` rewrites such a body into the document's own spelling, with the
server's own join, and asks the document: a body it then allows is not negative data. Only that check is left
out for it; every other check (no 5xx, the response as documented) still runs.

The other way round, the document allows more than the server in one known place: each earlier message is held
to the total its kind may have, since JSON Schema cannot sum the history's or the instructions' characters
(request_schema.py). A conversation whose messages each fit but not together is a 400, and schemathesis'
positive_data_acceptance (ST202) reported it as "schema-valid request rejected" (CI, 2026-12-07: two system
messages, as text parts, past the tiny profile's 200 characters of instructions). :func:`over_a_summed_limit`
finds such a body with the server's own conversion (``to_agent_request``); only ST202 is left out for it."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from deployments.protocol import ChatCompletionRequest, ChatMessage
from deployments.responses_protocol import InputMessage, ResponsesRequest
from react_tier.request import RequestLimits

REQUESTS = {"/v1/chat/completions": ("ChatCompletionRequest", "messages", ChatMessage),
            "/v1/responses": ("ResponsesRequest", "input", InputMessage)}


def _canonical(body: dict[str, Any], conversation: str, message_type: type) -> dict[str, Any] | None:
    """``body`` in the document's spelling, or None where nothing changes (or it is no request)."""
    body, changed = dict(body), False
    messages = body.get(conversation)
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict) \
            and isinstance(messages[-1].get("content"), list):
        try:
            text = message_type.model_validate(messages[-1]).text()
        except (ValueError, TypeError):
            return None
        body[conversation] = [*messages[:-1], {**messages[-1], "content": text}]
        changed = True
    caps = body.get("max_tokens"), body.get("max_completion_tokens")
    if all(type(cap) is int for cap in caps) and caps[0] == caps[1]:  # bool is no int here, as in the server
        del body["max_tokens"]
        changed = True
    return body if changed else None


def documented_equivalent(document: dict[str, Any], path: str, body: Any) -> bool:
    """True when ``body`` is one of the left-out spellings of a request ``document`` allows at ``path``."""
    if path not in REQUESTS or not isinstance(body, dict):
        return False
    name, conversation, message_type = REQUESTS[path]
    canonical = _canonical(body, conversation, message_type)
    validator = Draft202012Validator({**document, "$ref": f"#/components/schemas/{name}"})
    return canonical is not None and validator.is_valid(canonical)


def over_a_summed_limit(path: str, body: Any, limits: RequestLimits) -> bool:
    """True when ``body`` is a request whose history or instructions, summed as the server sums them, are over
    ``limits`` (each message may still fit: the one rule the document states per message only)."""
    if path not in REQUESTS or not isinstance(body, dict):
        return False
    try:
        chat = ResponsesRequest.model_validate(body).to_chat() if path == "/v1/responses" \
            else ChatCompletionRequest.model_validate(body)
        request = chat.to_agent_request()
    except (ValueError, TypeError):  # refused for another reason: not this case
        return False
    return (sum(len(turn.content) for turn in request.history) > limits.max_history_chars
            or len(request.instructions or "") > limits.max_instructions_chars)


def exempt_checks(case: Any, document: dict[str, Any], limits: RequestLimits) -> list:
    """The one schemathesis check ``case`` is exempt from, if any (every other check still runs):
    negative_data_rejection for a negative case that is a documented equivalent of a request ``document``
    allows; positive_data_acceptance for a positive case whose history or instructions add up past ``limits``."""
    mode = case.meta.generation.mode
    if mode == GenerationMode.NEGATIVE and documented_equivalent(document, case.path, case.body):
        return [negative_data_rejection]
    if mode == GenerationMode.POSITIVE and over_a_summed_limit(case.path, case.body, limits):
        return [positive_data_acceptance]
    return []

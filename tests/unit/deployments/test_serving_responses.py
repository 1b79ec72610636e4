"""``POST /v1/responses`` with the official ``openai`` client (its own parsing, over httpx's ASGI transport: no
Ray, no vLLM) and every event checked strictly against ``openai.types.responses``: the typed items of a run
(reasoning, mcp_call, message with citation annotations), the stream's events in OpenAI's order, the 400s
that name a refused parameter before the first byte, the in-band failure, and the same guard (keys, 413,
429), request ids and metrics as chat completions. The agent is the contract double
(tests/unit/deployments/helpers)."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from deployments.api_router import create_app
from deployments.auth import KeyRing, parse_keys
from deployments.config import ApiSettings
from deployments.metrics import PipelineMetrics
from deployments.serving_chat import OpenAIServingChat
from react_tier import UpstreamError
from react_tier.results import AgentResult
from tests.unit.deployments.helpers import RESULT, ContractAgent, requests_by, samples

URL = "/v1/responses"
BODY = {"model": "sui-react", "input": "隋朝何时建立？"}
EVENTS = TypeAdapter(ResponseStreamEvent)
CITED = AgentResult.model_validate({**RESULT.model_dump(), **{
    "answer": "隋文帝杨坚[suishu:卷1:3]，见【https://example.org/sui】。",
    "citations": [*RESULT.model_dump()["citations"], {"id": "https://example.org/sui", "source": "web",
                                                      "title": "隋"}],
    "steps": [{"index": 0, "thought": "先查资料", "tool": "search_knowledge", "tool_input": {"query": "隋朝"},
               "observation": "[suishu:卷1:3] 高祖文皇帝"},
              {"index": 1, "thought": "再查网页", "tool": "web_search", "tool_input": {"query": "隋"},
               "error": "timeout"}]}})


def app_for(agent: ContractAgent | None = None, keys: str | None = None, metrics=None, **settings):
    chat = OpenAIServingChat(ApiSettings.load(**settings), agent or ContractAgent(), metrics)
    return create_app(chat, keys=KeyRing(parse_keys(keys)) if keys else None)


def openai_client(app) -> openai.AsyncOpenAI:
    transport = httpx.ASGITransport(app=app)
    return openai.AsyncOpenAI(api_key="sk-none", base_url="http://api/v1", max_retries=0,
                              http_client=httpx.AsyncClient(transport=transport, base_url="http://api"))


async def test_the_official_client_reads_the_answer_steps_and_citations():
    agent = ContractAgent(result=CITED, deltas=("隋文帝",))
    client = openai_client(app_for(agent))
    response = await client.responses.create(model="sui-react", input="隋朝何时建立？", instructions="简短",
                                             max_output_tokens=50, metadata={"ticket": "7"})
    Response.model_validate(response.model_dump())  # strict: every field of OpenAI's type, not just parsed
    assert response.status == "completed" and response.output_text == CITED.answer
    assert [item.type for item in response.output] == ["reasoning", "mcp_call", "reasoning", "mcp_call", "message"]
    thought, search, _, web, message = response.output
    assert thought.content[0].text == "先查资料"
    assert (search.name, json.loads(search.arguments), search.output, search.status) == (
        "search_knowledge", {"query": "隋朝"}, "[suishu:卷1:3] 高祖文皇帝", "completed")
    assert web.status == "failed" and web.error.content == "timeout" and web.server_label == "sui"
    file_cite, url_cite = message.content[0].annotations
    assert (file_cite.type, file_cite.file_id, file_cite.filename) == ("file_citation", "suishu:卷1:3", "帝纪")
    assert CITED.answer[:file_cite.index].endswith("[suishu:卷1:3]")
    assert url_cite.type == "url_citation" and url_cite.url == "https://example.org/sui"
    assert CITED.answer[url_cite.start_index:url_cite.end_index] == "【https://example.org/sui】"
    assert response.metadata == {"ticket": "7"} and response.max_output_tokens == 50 and response.store is False
    assert response.usage.input_tokens == 13 and response.usage.output_tokens == 3
    assert response.model_extra["sui"]["citations"][0]["text"] == "高祖文皇帝"
    sent = agent.requests[0]
    assert sent.instructions == "简短" and sent.question == "隋朝何时建立？" and sent.generation.max_tokens == 50
    assert response.id == f"resp_{sent.request_id}"


async def test_the_stream_is_openais_sequence_of_typed_events():
    agent = ContractAgent(result=CITED, deltas=("隋文帝杨坚", "[suishu:卷1:3]，见【https://example.org/sui】。"))
    client = openai_client(app_for(agent))
    stream = await client.responses.create(model="sui-react", input=[
        {"role": "user", "content": "隋朝是谁建立的？"}, {"role": "assistant", "content": "杨坚。"},
        {"role": "user", "content": [{"type": "input_text", "text": "哪一年？"}]}], stream=True)
    events = [event async for event in stream]
    for number, event in enumerate(events):
        EVENTS.validate_python(event.model_dump())  # strict, against the union the client reads
        assert event.sequence_number == number
    kinds = [event.type for event in events]
    step = ["response.output_item.added", "response.output_item.done"]
    assert kinds == ["response.created", "response.in_progress", *step * 4, "response.output_item.added",
                     "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas == final.output_text == events[-4].text == CITED.answer
    assert [e.item.id for e in events if e.type == "response.output_item.done"] == [i.id for i in final.output]
    assert {e.output_index for e in events if e.type.startswith("response.output_text")} == {4}
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    assert [t.role for t in agent.requests[0].history] == ["user", "assistant"]


async def test_a_cut_answer_is_incomplete():
    cut = RESULT.model_copy(update={"truncated": True})
    client = openai_client(app_for(ContractAgent(result=cut)))
    response = await client.responses.create(model="sui-react", input="隋？", max_output_tokens=2)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    stream = await client.responses.create(model="sui-react", input="隋？", max_output_tokens=2, stream=True)
    assert [e async for e in stream][-1].type == "response.incomplete"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("fields", "param", "fragment"), [
    ({"store": True}, "store", "keeps no responses"),
    ({"previous_response_id": "resp_1"}, "previous_response_id", "send the whole conversation"),
    ({"conversation": "conv_1"}, "conversation", "keeps no conversations"),
    ({"tools": [{"type": "function", "name": "f"}]}, "tools", "runs its own tools"),
    ({"background": True}, "background", "not supported"),
    ({"reasoning": {"effort": "high"}}, "reasoning", "not supported"),
    ({"include": ["file_search_call.results"]}, "include", "not supported"),
    ({"text": {"format": {"type": "json_schema"}}}, "text", "'text'"),
    ({"text": {"verbosity": "low"}}, "text", "verbosity is not supported"),
    ({"truncation": "auto"}, "truncation", "'disabled'"),
    ({"tool_choice": "required"}, "tool_choice", ""),
    ({"frobnicate": 1}, "frobnicate", "unsupported parameter"),
    ({"input": [{"role": "user", "content": "隋"}, {"role": "assistant", "content": "a"}]}, "input", "last"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "input", ""),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input", ""),
    ({"input": " \u3000"}, "input", "empty"),
    ({"input": "问" * 2001}, "input", "limit is 2000"),
    ({"model": "gpt-4"}, "model", "does not exist"),
    ({"max_output_tokens": "5"}, "max_output_tokens", "JSON number"),
    ({"sui_max_steps": 21}, "sui_max_steps", "limit"),
])
def test_refused_fields_are_a_400_naming_them_before_the_first_byte(stream, fields, param, fragment):
    agent = ContractAgent()
    resp = TestClient(app_for(agent)).post(URL, json={**BODY, "stream": stream, **fields})
    assert resp.status_code in (400, 404) and resp.headers["content-type"] == "application/json", resp.text
    error = resp.json()["error"]
    assert error["param"] == param and fragment in error["message"] and error["code"] == resp.status_code
    assert agent.requests == [] and len(resp.headers.get_list("x-request-id")) == 1


def test_neutral_values_of_refused_fields_pass():
    resp = TestClient(app_for()).post(URL, json={**BODY, "store": False, "tools": [], "service_tier": "auto",
                                                 "tool_choice": "none", "truncation": "disabled",
                                                 "text": {"format": {"type": "text"}}})
    assert resp.status_code == 200, resp.text


def test_stream_options_need_a_stream():
    resp = TestClient(app_for()).post(URL, json={**BODY, "stream_options": {"include_obfuscation": False}})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "stream_options"


async def test_a_failure_midway_is_an_error_event_and_response_failed_counted_with_its_status():
    metrics = PipelineMetrics()
    agent = ContractAgent(fail=UpstreamError("agent LLM timed out", 504), fail_after=1)
    stream = await openai_client(app_for(agent, metrics=metrics)).responses.create(
        model="sui-react", input="隋？", stream=True)
    events = [e async for e in stream]
    assert [e.type for e in events[-3:]] == ["response.output_text.delta", "error", "response.failed"]
    assert events[-2].code == "upstream_timeout" and "timed out" in events[-2].message
    assert events[-1].response.status == "failed" and events[-1].response.error.code == "server_error"
    assert requests_by(metrics) == {("504", "true"): 1} and agent.closed == 1


def test_an_upstream_failure_before_the_answer_is_a_502_json_error():
    agent = ContractAgent(fail=UpstreamError("agent LLM failed", status_code=502))
    resp = TestClient(app_for(agent), raise_server_exceptions=False).post(URL, json=BODY)
    assert resp.status_code == 502 and resp.json()["error"]["type"] == "upstream_error"


def test_same_guard_request_ids_and_metrics_as_chat_completions():
    metrics = PipelineMetrics()
    client = TestClient(app_for(keys="ci:sk-test-0123456789abcdef", metrics=metrics,
                                admission={"max_body_bytes": 2000}))
    assert client.post(URL, json=BODY).status_code == 401
    auth = {"Authorization": "Bearer sk-test-0123456789abcdef"}
    assert client.post(URL, json={**BODY, "input": "问" * 1000}, headers=auth).status_code == 413
    resp = client.post(URL, json=BODY, headers={**auth, "X-Request-Id": "req-42"})
    assert resp.status_code == 200 and resp.headers["x-request-id"] == "req-42"
    assert resp.json()["id"] == "resp_req-42" and resp.json()["sui"]["request_id"] == "req-42"
    assert client.post(URL, json={**BODY, "stream": True}, headers=auth).status_code == 200
    assert requests_by(metrics) == {("200", "false"): 1, ("200", "true"): 1, ("401", "false"): 1,
                                    ("413", "false"): 1}
    s = samples(metrics)
    assert s[("sui_request_e2e_seconds_count", (("stream", "true"),))] == 1
    assert s[("sui_request_ttft_seconds_count", (("stream", "false"),))] == 1


async def test_admission_429_with_retry_after():
    release = asyncio.Event()

    class Held(ContractAgent):
        async def stream(self, request):
            await release.wait()
            async for event in super().stream(request):
                yield event

    app = app_for(Held(), admission={"max_in_flight": 1, "max_queue": 0})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        first = asyncio.ensure_future(client.post(URL, json=BODY))
        await asyncio.sleep(0.1)
        refused = await client.post(URL, json=BODY)
        release.set()
        assert (await first).status_code == 200
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "rate_limit_error"

"""The pipeline API's routes through FastAPI's TestClient (no Ray, no vLLM): status codes, OpenAI's error JSON,
the refused parameters, request ids, and 503 before start-up. The agent is
tests/unit/deployments/helpers.ContractAgent, which refuses what the real agent refuses."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from deployments.api_router import create_app
from deployments.config import ApiSettings
from deployments.serving_chat import OpenAIServingChat
from react_tier import UpstreamError
from tests.unit.deployments.helpers import ContractAgent

URL = "/v1/chat/completions"
USER = [{"role": "user", "content": "隋朝何时建立？"}]


def client_for(agent: ContractAgent | None = None, **settings) -> TestClient:
    chat = OpenAIServingChat(ApiSettings.load(**settings), agent or ContractAgent())
    return TestClient(create_app(chat), raise_server_exceptions=False)


def body(**kw) -> dict:
    return {"model": "sui-react", "messages": USER, **kw}


def assert_openai_error(resp, status: int, param: str | None = None, fragment: str = "") -> dict:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == status
    assert error["param"] == param and fragment in error["message"]
    assert len(resp.headers.get_list("x-request-id")) == 1
    return error


def test_system_message_and_multi_turn_reach_the_agent():
    agent = ContractAgent()
    resp = client_for(agent).post(URL, json=body(messages=[
        {"role": "system", "content": "请用一句话回答。"}, {"role": "user", "content": "隋朝是谁建立的？"},
        {"role": "assistant", "content": "杨坚。"}, {"role": "user", "content": "哪一年？"}]))
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "隋文帝"
    sent = agent.requests[0]
    assert sent.instructions == "请用一句话回答。" and sent.question == "哪一年？"
    assert [t.role for t in sent.history] == ["user", "assistant"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("extra, param", [
    ({"n": 2}, "n"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"logit_bias": {"1": 5}}, "logit_bias"),
    ({"store": True}, "store"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"frobnicate": 1}, "frobnicate"),
    ({"stream_options": {"continuous_usage_stats": True}}, "stream_options"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"temperature": 3}, "temperature"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 5, "max_completion_tokens": 6}, "max_tokens"),  # issue #25, item 4: was param null
    ({"messages": [{"role": "user", "content": "x" * 2001}]}, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}, *USER]}, "messages"),
    ({"sui_max_steps": 99}, "sui_max_steps"),
])
def test_each_refused_parameter_is_a_400_naming_it(extra, param, stream):
    resp = client_for().post(URL, json=body(stream=stream, **extra))
    assert_openai_error(resp, 400, param)
    assert "text/event-stream" not in resp.headers.get("content-type", "")  # refused before the first byte


def test_stream_options_need_a_stream():
    """Issue #25, item 4: stream_options without stream was accepted (OpenAI refuses it)."""
    for extra in ({}, {"stream": False}):
        resp = client_for().post(URL, json=body(stream_options={"include_usage": True}, **extra))
        error = assert_openai_error(resp, 400, "stream_options", "only allowed when stream is true")
        assert error["message"] == "stream_options: stream_options is only allowed when stream is true"
    assert client_for().post(URL, json=body(stream_options=None)).status_code == 200
    resp = client_for().post(URL, json=body(stream=True, stream_options={"include_usage": False}))
    assert resp.status_code == 200 and "\"choices\":[]" not in resp.text  # no usage chunk


def test_equal_token_caps_pass_and_different_ones_name_max_tokens():
    resp = client_for().post(URL, json=body(max_tokens=5, max_completion_tokens=5))
    assert resp.status_code == 200, resp.text
    resp = client_for().post(URL, json=body(max_tokens=7, max_completion_tokens=5))
    assert_openai_error(resp, 400, "max_tokens", "max_tokens and max_completion_tokens disagree")


def test_stream_must_be_a_real_boolean():
    assert_openai_error(client_for().post(URL, json=body(stream="yes")), 400, "stream")
    for value in ("yes", 1):
        resp = client_for().post(URL, json=body(stream=True, stream_options={"include_usage": value}))
        assert_openai_error(resp, 400, "stream_options")


def test_malformed_json_and_unknown_routes_and_methods():
    client = client_for()
    for junk in (b"{not json", b"\xff{not json"):  # a JSON error, and a body that is not even UTF-8
        assert_openai_error(client.post(URL, content=junk, headers={"content-type": "application/json"}),
                            400, None, "not valid JSON")
    assert_openai_error(client.get("/v1/nope"), 404, None, "no route GET /v1/nope")
    resp = client.get(URL)
    assert_openai_error(resp, 405, None, "not allowed")
    assert resp.headers["allow"] == "POST"


def test_unknown_model_is_404():
    assert_openai_error(client_for().post(URL, json=body(model="gpt-4")), 404, "model", "does not exist")


@pytest.mark.parametrize("status", [502, 503, 504])
def test_upstream_failures_keep_their_status(status):
    agent = ContractAgent(fail=UpstreamError("agent LLM failed", status_code=status))
    assert_openai_error(client_for(agent).post(URL, json=body()), status, None, "agent LLM failed")


def test_request_ids_one_header_on_every_response():
    client = client_for()
    for resp in (client.get("/health"), client.get("/v1/models"), client.get("/ready"), client.get("/nope"),
                 client.post(URL, json=body()), client.post(URL, json=body(n=3))):
        ids = resp.headers.get_list("x-request-id")
        assert len(ids) == 1 and len(ids[0]) == 32, (resp.request.url, ids)
    resp = client.post(URL, json=body(), headers={"X-Request-Id": "abc-123.x_y"})
    assert resp.headers.get_list("x-request-id") == ["abc-123.x_y"] and resp.json()["id"] == "chatcmpl-abc-123.x_y"
    assert resp.json()["sui"]["request_id"] == "abc-123.x_y"
    for bad in ("a b", "x" * 65, "a/b", ""):
        assert_openai_error(client.post(URL, json=body(), headers={"X-Request-Id": bad}), 400, "X-Request-Id")


@pytest.mark.parametrize("path", ["/health", "/ready", "/v1/models", URL])
def test_a_refused_request_id_is_never_echoed(path):
    """Issue #25, item 4: the 400 of a malformed client X-Request-Id carried that value back in its header
    (a reflected header), and every route refuses it, /health included; two headers are refused too (the
    app took the first, Ray's proxy another)."""
    client = client_for()
    send = client.post if path == URL else client.get
    for bad in (["abc\u00e9"], ["a" * 65], ["evil\t1"], ["ok-1", "ok-2"]):
        headers = [("X-Request-Id", v.encode("latin-1")) for v in bad]
        resp = send(path, **({"json": body()} if path == URL else {}), headers=headers)
        error = assert_openai_error(resp, 400, "X-Request-Id", "1-64 characters")
        (echoed,) = resp.headers.get_list("x-request-id")
        assert echoed not in bad and len(echoed) == 32 and error["type"] == "invalid_request_error"
    resp = send(path, **({"json": body()} if path == URL else {}), headers={"X-Request-Id": "ok.1_A-b"})
    assert resp.status_code != 400 and resp.headers.get_list("x-request-id") == ["ok.1_A-b"]


def test_streamed_response_and_include_usage():
    resp = client_for().post(URL, json=body(stream=True, stream_options={"include_usage": True}))
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["cache-control"] == "no-cache"  # no proxy between client and API may hold the events back
    data = [json.loads(line[6:]) for line in resp.text.split("\n\n") if line.startswith("data: {")]
    assert data[-1]["usage"]["completion_tokens"] == 3 and data[-1]["choices"] == []
    assert data[-2]["choices"][0]["finish_reason"] == "stop" and data[-2]["sui"]["citations"][0]["text"]
    assert resp.text.endswith("data: [DONE]\n\n")


def test_models_card_says_what_runs():
    resp = client_for(profile="cpu-tiny-shared", tiny_models=True).get("/v1/models")
    card = resp.json()["data"][0]
    assert card["id"] == "sui-react" and card["sui"] == {"profile": "cpu-tiny-shared", "tiny_models": True}


def test_ready_reports_each_upstream():
    resp = client_for(ContractAgent(upstreams={"domain": True, "agent": False})).get("/ready")
    assert resp.status_code == 503 and resp.json()["upstreams"] == {"domain": True, "agent": False}
    assert resp.headers["retry-after"] == "2"  # issue #25, item 4: the upstreams' 503 had no Retry-After
    ready = client_for().get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "upstreams": {"domain": True, "agent": True}}
    assert "retry-after" not in ready.headers


def test_every_503_of_ready_has_retry_after():
    class Broken(ContractAgent):
        async def check_upstreams(self):
            raise OSError("probe failed")

    resp = client_for(Broken()).get("/ready")
    assert resp.status_code == 503 and resp.headers["retry-after"] == "2"
    assert resp.json() == {"status": "unavailable", "error": "upstream check: OSError: probe failed"}
    client = client_for()
    client.app.state.gate.drain()
    resp = client.get("/ready")
    assert (resp.status_code, resp.json(), resp.headers["retry-after"]) == (503, {"status": "draining"}, "2")
    starting = TestClient(create_app(None)).get("/ready")
    assert starting.status_code == 503 and starting.headers["retry-after"] == "2"


def test_the_503s_retry_after_is_the_configured_one():
    """One Retry-After setting (admission.retry_after_s) for every 429/503 of the API, /ready's 503 included."""
    client = client_for(admission={"retry_after_s": 7})
    client.app.state.gate.drain()
    resp = client.get("/ready")
    assert (resp.status_code, resp.headers["retry-after"]) == (503, "7")


def test_503_before_start_up_and_health_still_answers():
    client = TestClient(create_app(None), raise_server_exceptions=False)
    assert_openai_error(client.post(URL, json=body()), 503, None, "starting up")
    assert_openai_error(client.get("/v1/models"), 503, None, "starting up")
    assert client.get("/health").json() == {"status": "ok"}


def test_an_accepted_request_is_logged_with_its_shape(caplog):
    client = client_for()
    with caplog.at_level("INFO", logger="deployments.serving_chat"):
        assert client.post(URL, json=body(stream=True, user="u-7", sui_max_steps=3,
                                          messages=[{"role": "system", "content": "简短"},
                                                    {"role": "user", "content": "隋朝何时建立？"}])).status_code == 200
    line = next(r for r in caplog.records if r.getMessage() == "request_accepted")
    assert (line.stream, line.messages, line.max_steps, line.user) == (True, 2, 3, "u-7")


def _nulls(value, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _nulls(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _nulls(item, f"{path}.{i}")]
    return [path] if value is None else []


def test_a_non_streamed_answer_leaves_out_what_is_not_set():
    resp = client_for().post(URL, json=body())
    assert resp.status_code == 200 and _nulls(resp.json()) == []  # OpenAI's SDK reads a missing field as None


def test_only_a_429_or_503_says_when_to_retry():
    client = client_for()
    for resp in (client.post(URL, json=body(model="gpt-4")), client.post(URL, json=body(n=2)),
                 client_for(ContractAgent(fail=UpstreamError("down", status_code=502))).post(URL, json=body())):
        assert resp.status_code in (400, 404, 502) and "retry-after" not in resp.headers


def test_min_tokens_above_a_calls_cap_is_a_400_naming_it():
    per_call = ApiSettings.load().agent.agent_llm.max_tokens
    error = assert_openai_error(client_for().post(URL, json=body(min_tokens=per_call + 1)), 400, "min_tokens")
    assert error["message"] == f"min_tokens {per_call + 1} is above the agent tier's {per_call} tokens per call"
    assert client_for().post(URL, json=body(min_tokens=per_call)).status_code == 200


def test_the_document_publishes_the_served_model_and_the_calls_cap():
    settings = ApiSettings.load(served_model_name="sui-x", agent={"agent_llm": {"max_tokens": 77}})
    app = create_app(OpenAIServingChat(settings, ContractAgent(settings.agent)))
    props = {name: TestClient(app).get("/openapi.json").json()["components"]["schemas"][name]["properties"]
             for name in ("ChatCompletionRequest", "ResponsesRequest")}
    assert props["ChatCompletionRequest"]["model"]["enum"] == ["sui-x"] == props["ResponsesRequest"]["model"]["enum"]
    assert props["ChatCompletionRequest"]["min_tokens"]["anyOf"][0]["maximum"] == 77


async def test_the_upstream_check_is_cached_for_its_ttl(monkeypatch):
    import deployments.serving_chat as serving_chat

    class Counting(ContractAgent):
        calls = 0

        async def check_upstreams(self):
            Counting.calls += 1
            return {"agent_llm": True}

    now = [100.0]  # the module's clock only (asyncio's own stays the real one)
    monkeypatch.setattr(serving_chat, "time", SimpleNamespace(monotonic=lambda: now[0], perf_counter=time.perf_counter))
    chat = OpenAIServingChat(ApiSettings.load(), Counting())
    assert await chat.check_upstreams() == {"agent_llm": True} and Counting.calls == 1
    now[0] = 103.0  # exactly the default ttl of 3 s: still the cached answer
    await chat.check_upstreams()
    assert Counting.calls == 1
    now[0] = 103.5
    await chat.check_upstreams()
    assert Counting.calls == 2

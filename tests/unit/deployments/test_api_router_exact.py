"""The API layer's behaviour pinned where mutation testing found it unpinned: the request-id middleware as raw ASGI
(no state in the scope, a response start without headers, lifespan passing through, echo on by default), the
error classification of every failure the agent tier can raise (full queue 429, timeout 504, upstream 502/503/504,
anything else 500), the stream path handing the agent the same request as the JSON path, content parts, and the
OpenAI error types."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from ray.serve.exceptions import BackPressureError

from deployments.api_router import create_app
from deployments.config import ApiSettings
from deployments.errors import ApiError, classify_exception
from deployments.middleware import RequestIdMiddleware
from deployments.protocol import ERROR_TYPES, ChatMessage, error_body
from deployments.serving_chat import OpenAIServingChat
from react_tier import AgentInputError, UpstreamError
from tests.unit.deployments.helpers import ContractAgent

URL = "/v1/chat/completions"
CONVERSATION = [{"role": "developer", "content": "简短回答。"}, {"role": "user", "content": "隋朝是谁建立的？"},
                {"role": "assistant", "content": "杨坚。"}, {"role": "user", "content": "  哪一年？ "}]


def client_for(agent: ContractAgent | None = None, **kw) -> TestClient:
    return TestClient(create_app(OpenAIServingChat(ApiSettings(), agent or ContractAgent()), **kw),
                      raise_server_exceptions=False)


def _raw_call(middleware, scope: dict) -> list[dict]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent


def _http_scope(headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""}


def test_middleware_as_raw_asgi_sets_state_and_echoes_the_id():
    seen = {}

    async def inner(scope, receive, send):
        seen.update(request_id=scope["state"]["context"].request_id)  # the one request context
        await send({"type": "http.response.start", "status": 200})  # no "headers" key at all
        await send({"type": "http.response.body", "body": b"ok"})

    sent = _raw_call(RequestIdMiddleware(inner), _http_scope([(b"x-request-id", b"abc.1")]))
    assert seen == {"request_id": "abc.1"}
    assert sent[0]["headers"] == [(b"x-request-id", b"abc.1")] and sent[1]["body"] == b"ok"

    sent = _raw_call(RequestIdMiddleware(inner, echo=False), _http_scope([]))
    assert "headers" not in sent[0] and len(seen["request_id"]) == 32


def test_middleware_refuses_a_bad_id_before_the_app_runs():
    async def inner(scope, receive, send):
        raise AssertionError("the app must not run")

    sent = _raw_call(RequestIdMiddleware(inner), _http_scope([(b"x-request-id", "é".encode("latin-1"))]))
    ids = [value for name, value in sent[0]["headers"] if name == b"x-request-id"]
    # its own id, never the refused value
    assert sent[0]["status"] == 400 and len(ids) == 1 and len(ids[0]) == 32
    sent = _raw_call(RequestIdMiddleware(inner, echo=False), _http_scope([(b"x-request-id", b"a"),
                                                                          (b"x-request-id", b"b")]))
    assert sent[0]["status"] == 400 and b"x-request-id" not in dict(sent[0]["headers"])


def test_lifespan_passes_through_the_middleware():
    with TestClient(create_app(None)) as client:  # runs the lifespan scope through the middleware
        assert client.get("/health").json() == {"status": "ok"}


def test_echo_can_be_switched_off_for_ray_serve():
    resp = client_for(echo_request_id=False).post(URL, json={"model": "sui-react", "messages": CONVERSATION})
    assert resp.status_code == 200 and "x-request-id" not in resp.headers


def test_openapi_document_names_the_api():
    info = create_app(None).openapi()["info"]
    assert (info["title"], info["version"]) == ("Sui QA pipeline API", "0.2.0")


ERROR_CODES = {"/v1/chat/completions": {"400", "401", "404", "413", "429", "502", "503", "504"},
               "/v1/models": {"401", "503"}}


def _doc(keys: str | None) -> dict:
    from deployments.auth import KeyRing, parse_keys

    chat = OpenAIServingChat(ApiSettings(), ContractAgent())
    app = create_app(chat, keys=KeyRing(parse_keys(keys)) if keys else None)
    return TestClient(app).get("/openapi.json").json()


def test_openapi_documents_the_error_statuses_and_never_a_422():
    doc = _doc(None)
    for path, codes in ERROR_CODES.items():
        [operation] = doc["paths"][path].values()
        responses = operation["responses"]
        assert codes <= set(responses) and "422" not in responses, path
        for code in codes:
            assert responses[code]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"}, (path, code)
    described = doc["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert described["400"]["description"] == "Invalid request (parameter named in `error.param`); never 422"
    assert described["413"]["description"] == "Request body larger than `admission.max_body_bytes`"
    assert described["504"]["description"] == "The request exceeded the pipeline's time limit"
    assert all("422" not in op["responses"] for item in doc["paths"].values() for op in item.values())
    schemas = doc["components"]["schemas"]
    assert "ErrorResponse" in schemas and not {"HTTPValidationError", "ValidationError"} & set(schemas)
    # an open API (no keys) documents no authentication
    assert "securitySchemes" not in doc["components"]
    assert all("security" not in op for item in doc["paths"].values() for op in item.values())


def test_openapi_documents_bearer_auth_on_v1_when_keys_are_set():
    doc = _doc("alice:sk-alice-0123456789abcdef")
    assert doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, item in doc["paths"].items():
        for operation in item.values():
            assert operation.get("security") == ([{"bearer": []}] if path.startswith("/v1/") else None), path
            assert "422" not in operation["responses"]
    assert "/health" in doc["paths"]
    assert not {"HTTPValidationError", "ValidationError"} & set(doc["components"]["schemas"])


def test_starting_up_message_is_exact():
    resp = TestClient(create_app(None)).get("/v1/models")
    assert resp.status_code == 503 and resp.json()["error"]["message"] == "the API is starting up"


@pytest.mark.parametrize("exc, status, message, param", [
    (BackPressureError(num_queued_requests=5, max_queued_requests=5), 429,
     "the agent tier is at capacity (queue full); retry later", None),
    (TimeoutError(), 504, "the request exceeded the pipeline's time limit", None),
    (UpstreamError("agent LLM gave a bad response\ndetail", 502), 502, "agent LLM gave a bad response", None),
    (UpstreamError("", 503), 503, "upstream LLM tier failed", None),
    (AgentInputError("the question is empty\nmore", param="messages"), 400, "the question is empty", "messages"),
    (AgentInputError("too many steps", param="sui_max_steps"), 400, "too many steps", "sui_max_steps"),
    (AgentInputError(""), 400, "invalid question", "messages"),
    (ApiError(418, "teapot", "x"), 418, "teapot", "x"),
    (RuntimeError("boom"), 500, "internal error: RuntimeError", None),
])
def test_every_failure_is_classified(exc, status, message, param):
    err = classify_exception(exc)
    assert (err.status, err.message, err.param) == (status, message, param)


@pytest.mark.parametrize("fail, status", [
    (BackPressureError(num_queued_requests=1, max_queued_requests=1), 429),  # a full queue: 429, never a 500
    (TimeoutError(), 504), (UpstreamError("agent LLM timed out", 504), 504), (RuntimeError("x"), 500)])
def test_route_statuses_for_agent_failures(fail, status):
    resp = client_for(ContractAgent(fail=fail)).post(URL, json={"model": "sui-react", "messages": CONVERSATION})
    assert resp.status_code == status and resp.json()["error"]["code"] == status
    assert resp.json()["error"]["type"] == ERROR_TYPES[status]


@pytest.mark.parametrize("stream", [False, True])
def test_both_paths_hand_the_agent_the_whole_request(stream):
    agent = ContractAgent()
    resp = client_for(agent).post(URL, headers={"X-Request-Id": "req-7"}, json={
        "model": "sui-react", "messages": CONVERSATION, "stream": stream, "user": "u1", "max_tokens": 9,
        "temperature": 0.5, "stop": "。", "top_k": 4, "sui_max_steps": 3})
    assert resp.status_code == 200, resp.text
    sent = agent.requests[0]
    assert (sent.question, sent.request_id, sent.user, sent.max_steps, sent.instructions) == \
        ("哪一年？", "req-7", "u1", 3, "简短回答。")
    assert [(t.role, t.content) for t in sent.history] == [("user", "隋朝是谁建立的？"), ("assistant", "杨坚。")]
    assert sent.generation.model_dump(exclude_defaults=True) == {"max_tokens": 9, "temperature": 0.5,
                                                                "stop": ["。"], "extra": {"top_k": 4}}


def test_a_stream_refusal_is_a_status_not_a_200():
    resp = client_for().post(URL, json={"model": "sui-react", "stream": True,
                                        "messages": [{"role": "user", "content": "  "}]})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "messages"


def test_message_text_of_every_content_form():
    assert ChatMessage(role="assistant", content=None).text() == ""
    assert ChatMessage(role="user", content=[{"type": "text", "text": "隋"}, {"type": "text"}]).text() == "隋"
    with pytest.raises(ValueError) as info:
        ChatMessage(role="user", content=[{"type": "image_url"}]).text()
    assert str(info.value) == "unsupported content part type 'image_url'; only text is accepted"


def test_error_types():
    assert error_body(404, "m", "model") == {"error": {"message": "m", "type": "not_found_error", "param": "model",
                                                       "code": 404}}
    assert error_body(418, "m")["error"]["type"] == "error"
    assert {s: error_body(s, "m")["error"]["type"] for s in (400, 503, 504)} == {
        400: "invalid_request_error", 503: "service_unavailable", 504: "upstream_timeout"}

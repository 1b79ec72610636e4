"""The front door (deployments/middleware.py) wrapped exactly as Ray Serve's proxy wraps its app
(``ray.serve._private.http_util._apply_middlewares``: Ray's RequestIdMiddleware inside, ours outside), around an
inner app that answers with the messages Ray's proxy itself sends on an error (``send_http_response_on_exception``
from a ``ResponseStatus``): what the proxy would put on the wire, without a Ray cluster. The live path is
tests/integration/test_ingress_guard_stack.py."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from ray.serve._private.http_util import (
    _apply_middlewares,
    retry_after_headers,
    send_http_response_on_exception,
    validate_http_proxy_callback_return,
)
from ray.serve._private.proxy_request_response import ResponseStatus

from deployments.middleware import PROXY_ENV, FrontDoor, proxy_middlewares
from deployments.request_context import REQUEST_ID_RULE, client_request_ids, new_request_id, request_id_error

REPLICA_429 = b'{"error": {"message": "admission queue full", "type": "rate_limit_error", "param": null, "code": 429}}'


def proxy_app(status: ResponseStatus | None = None, calls: list | None = None, replica_json: bytes | None = None):
    """Ray's proxy with one route: a Ray error answer (``status``), a replica's JSON error, or a streamed SSE
    response."""

    async def inner(scope, receive, send):
        if calls is not None:
            calls.append(scope["path"])
        if status is not None:
            for message in send_http_response_on_exception(status, response_started=False):
                await send(message)
            return
        if replica_json is not None:
            await send({"type": "http.response.start", "status": 429,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"5")]})
            await send({"type": "http.response.body", "body": replica_json})
            return
        body = (await receive()).get("body", b"")  # the request reaches the replica whole
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for chunk in (b"data: %d\n\n" % len(body), b"data: [DONE]\n\n"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return _apply_middlewares(inner, validate_http_proxy_callback_return(proxy_middlewares()))


def test_the_callback_is_what_rays_proxy_imports():
    module, _, name = PROXY_ENV["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"].partition(":")
    assert (module, name) == ("deployments.middleware", "proxy_middlewares")


def test_health_is_answered_at_the_door_without_reaching_a_replica():
    calls: list = []
    client = TestClient(proxy_app(calls=calls))
    resp = client.get("/health", headers={"X-Request-Id": "probe-1"})
    assert resp.status_code == 200 and resp.json() == {"status": "ok"} and resp.headers["x-request-id"] == "probe-1"
    assert client.get("/health").headers["x-request-id"]  # one of its own when the client sent none
    head = client.head("/health")
    assert head.status_code == 200 and head.content == b""
    assert calls == []
    client.post("/health")  # not a probe: the app answers it (405)
    client.get("/health/x")
    assert calls == ["/health", "/health/x"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/health"), ("HEAD", "/health"),
                                            ("POST", "/v1/chat/completions"), ("GET", "/ready")])
def test_a_malformed_request_id_is_refused_at_the_door_and_never_echoed(method, path):
    """Issue #25, item 4: Ray's proxy echoes the client's X-Request-Id on every response (the replica's 400
    for a malformed one too) and the door's /health accepted any value: the door refuses it first, with its
    own id."""
    calls: list = []
    client = TestClient(proxy_app(calls=calls))
    for bad in ([b"a b"], [b"x" * 65], [b""], [b"caf\xe9"], [b"ok-1", b"ok-2"], [b"ok\n"]):
        resp = client.request(method, path, headers=[(b"X-Request-Id", value) for value in bad])
        (echoed,) = resp.headers.get_list("x-request-id")
        assert resp.status_code == 400 and echoed.encode() not in bad and len(echoed) == 32
        if method != "HEAD":
            assert resp.json()["error"] == {"message": REQUEST_ID_RULE, "type": "invalid_request_error",
                                            "param": "X-Request-Id", "code": 400}
            assert int(resp.headers["content-length"]) == len(resp.content)
    assert calls == []  # refused before Ray's proxy saw it
    ok = client.request(method, path, headers={"X-Request-Id": "Ab.9_-z"})
    assert ok.status_code == 200 and ok.headers.get_list("x-request-id") == ["Ab.9_-z"]


def test_the_request_id_rule():
    for good in ([], ["a"], ["a" * 64], ["A-z.0_9"]):
        assert request_id_error(good) is None, good
    for bad in (["a" * 65], [""], ["a b"], ["a\n"], ["a/b"], ["é"], ["a", "a"]):
        assert request_id_error(bad) == REQUEST_ID_RULE, bad
    assert client_request_ids([(b"x-request-id", b"caf\xe9"), (b"other", b"1"), (b"x-request-id", b"b")]) == \
        ["caf\u00e9", "b"]
    assert len({new_request_id() for _ in range(3)}) == 3 and len(new_request_id()) == 32


def test_rays_backpressure_answer_becomes_an_openai_error_with_its_retry_after():
    status = ResponseStatus(code=429, is_error=True, headers=retry_after_headers(2),
                            message="Request dropped due to backpressure "
                                    "(num_queued_requests=1, max_queued_requests=1).")
    resp = TestClient(proxy_app(status)).post("/v1/chat/completions", json={})
    assert resp.status_code == 429 and resp.headers["retry-after"] == "2" and resp.headers["x-request-id"]
    assert resp.headers["content-type"] == "application/json"
    assert int(resp.headers["content-length"]) == len(resp.content)
    error = resp.json()["error"]
    assert error["code"] == 429 and error["type"] == "rate_limit_error"
    assert error["message"].startswith("the API is at capacity") and "max_queued_requests=1" in error["message"]


@pytest.mark.parametrize(("code", "text"), [(503, "Deployment 'SuiReAct' is unavailable."),
                                            (408, "Request abc timed out after 120.0s.")])
def test_rays_other_error_answers_keep_their_status_and_text(code, text):
    resp = TestClient(proxy_app(ResponseStatus(code=code, is_error=True, message=text))).get("/v1/models")
    assert resp.status_code == code and resp.json()["error"] == {
        "message": text, "type": {503: "service_unavailable", 408: "error"}[code], "param": None, "code": code}


def test_streams_and_json_answers_pass_untouched():
    resp = TestClient(proxy_app()).post("/v1/chat/completions", content=b"12345")
    assert resp.status_code == 200 and resp.text == "data: 5\n\ndata: [DONE]\n\n"
    assert resp.headers["content-type"] == "text/event-stream"
    resp = TestClient(proxy_app(replica_json=REPLICA_429)).post("/v1/chat/completions", json={})
    assert resp.status_code == 429 and resp.content == REPLICA_429 and resp.headers["retry-after"] == "5"


def sent(app, scope: dict, *messages: dict) -> list[dict]:
    """The ASGI messages ``app`` sends for ``scope`` (raw: header names and duplicates as they are)."""
    out: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        out.append(message)

    async def inner(scope, receive, send):
        for message in messages:
            await send(message)

    asyncio.run((app or FrontDoor(inner))(scope, receive, send))
    return out


def http(method: str = "GET", path: str = "/v1/models", headers=()) -> dict:
    return {"type": "http", "method": method, "path": path, "headers": list(headers)}


def test_health_headers_and_head_as_on_the_wire():
    start, body = sent(None, http("GET", "/health", [(b"x-request-id", b"r1")]))
    assert start["headers"] == [(b"content-type", b"application/json"), (b"content-length", b"15"),
                                (b"x-request-id", b"r1")] and body["body"] == b'{"status":"ok"}'
    assert sent(None, http("HEAD", "/health"))[1]["body"] == b""


def test_a_plain_text_error_in_chunks_is_joined_and_its_length_rewritten():
    start = {"type": "http.response.start", "status": 503,
             "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9"),
                         (b"retry-after", b"3")]}
    out = sent(None, http(), start, {"type": "http.response.body", "body": "隋 ".encode(), "more_body": True},
               {"type": "http.response.body", "body": b"down\xff", "more_body": True},
               {"type": "http.response.body", "more_body": False})
    assert len(out) == 2
    names = [name for name, _ in out[0]["headers"]]
    assert sorted(names) == [b"content-length", b"content-type", b"retry-after"]
    assert dict(out[0]["headers"])[b"content-length"] == str(len(out[1]["body"])).encode()
    assert '"message": "隋 down\ufffd"'.encode() in out[1]["body"]  # UTF-8 as the replicas write it, bad bytes replaced
    empty = sent(None, http(), {**start, "status": 500}, {"type": "http.response.body", "body": b""})
    assert b'"message": "HTTP 500"' in empty[1]["body"]


@pytest.mark.parametrize("start", [
    {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]},
    {"type": "http.response.start", "status": 399, "headers": [(b"content-type", b"text/plain")]},
    {"type": "http.response.start", "status": 500},  # no headers at all
    {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/html")]},
])
def test_what_is_not_a_plain_text_error_passes_as_sent(start):
    body = {"type": "http.response.body", "body": b"as is"}
    assert sent(None, http(), start, body) == [start, body]


def test_a_plain_text_400_is_an_error_too():
    start = {"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"text/plain")]}
    out = sent(None, http(), start, {"type": "http.response.body", "body": b"bad"})
    assert out[0]["status"] == 400 and b'"type": "invalid_request_error"' in out[1]["body"]


def test_other_scopes_pass_through_unchanged():
    seen = []

    async def inner(scope, receive, send):
        seen.append((scope, await receive()))
        await send({"type": "lifespan.startup.complete"})

    scope = {"type": "lifespan"}
    assert sent(FrontDoor(inner), scope) == [{"type": "lifespan.startup.complete"}]
    assert seen == [(scope, {"type": "http.request", "body": b"", "more_body": False})]

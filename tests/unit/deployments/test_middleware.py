"""deployments/middleware.py, one piece at a time: the guard's body reader (the size cap at its boundary, the body
replayed whole, what follows it passed on) and the access log line the metrics middleware writes for every
response. The whole chain through the app is in test_ingress_guard.py and test_metrics.py."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from deployments.admission import Gate
from deployments.api_router import create_app
from deployments.auth import KeyRing, parse_keys
from deployments.config import ApiSettings
from deployments.middleware import GuardMiddleware, RequestMetricsMiddleware, RequestRecord, _app_path, _BodyTooLarge
from deployments.request_context import RequestContext
from deployments.serving_chat import OpenAIServingChat
from tests.unit.deployments.helpers import ContractAgent

URL = "/v1/chat/completions"
LIMIT = 10


def guard() -> GuardMiddleware:
    gate = Gate(ApiSettings.load(), KeyRing([]))
    gate.max_body = LIMIT  # (the setting's floor is 1 KiB; the reader only reads the gate's number)
    return GuardMiddleware(None, gate)


def scope(content_length: bytes | None = None) -> dict:
    headers = [(b"content-type", b"application/json"), (b"x-count", b"99")]  # digits, but not the length
    return {"type": "http", "headers": headers + ([(b"content-length", content_length)] if content_length else [])}


def receiver(*messages: dict):
    pending = list(messages)

    async def receive() -> dict:
        assert pending, "read past the messages the client sent"
        return pending.pop(0)
    return receive


def request(body: bytes, more: bool | None = None) -> dict:
    message = {"type": "http.request", "body": body}
    if more is not None:
        message["more_body"] = more
    return message


async def test_a_body_of_exactly_the_cap_is_read_and_replayed_whole():
    receive = await guard()._read_body(scope(b"10"), receiver(request(b"12345", True), request(b"67890"),
                                                               {"type": "http.disconnect"}))
    assert await receive() == {"type": "http.request", "body": b"1234567890", "more_body": False}
    assert await receive() == {"type": "http.disconnect"}  # what follows the body is passed on


async def test_a_body_over_the_cap_is_refused():
    with pytest.raises(_BodyTooLarge):  # by its Content-Length, before a byte is read (the receiver is empty)
        await guard()._read_body(scope(b"11"), receiver())
    with pytest.raises(_BodyTooLarge):  # without one, by counting what arrives
        await guard()._read_body(scope(), receiver(request(b"123456", True), request(b"78901", False)))


async def test_a_message_without_a_body_or_more_body_is_an_empty_last_chunk():
    receive = await guard()._read_body(scope(), receiver({"type": "http.request"}))
    assert await receive() == {"type": "http.request", "body": b"", "more_body": False}


async def test_a_disconnect_before_the_body_is_passed_on():
    receive = await guard()._read_body(scope(), receiver({"type": "http.disconnect"}, {"type": "http.disconnect"}))
    assert await receive() == {"type": "http.disconnect"}
    assert await receive() == {"type": "http.disconnect"}  # then the client's own receive


def log_line(record: RequestRecord, caplog, monkeypatch, now: float) -> logging.LogRecord:
    monkeypatch.setattr("deployments.middleware.time", SimpleNamespace(perf_counter=lambda: now))  # its clock only
    with caplog.at_level(logging.INFO, logger="deployments.metrics"):
        RequestMetricsMiddleware(None)._finish(record, RequestContext(request_id="r-1"))
    (line,) = [r for r in caplog.records if r.getMessage() == "request"]
    return line


@pytest.mark.parametrize(("fields", "level", "reason"), [
    ({"status": 200, "completed": True}, "INFO", None),
    ({"status": 200, "completed": True, "stream": True}, "INFO", None),
    ({"status": 404, "completed": True}, "INFO", "not_found"),
    ({"status": 418, "completed": True}, "INFO", "client_error"),          # a 4xx without a reason of its own
    ({"status": 429, "completed": True, "reason": "queue_full"}, "INFO", "queue_full"),
    ({"status": 200}, "INFO", None),                                         # 499: the client left
    ({"status": 500, "completed": True}, "WARNING", None),
    ({"status": 501, "completed": True}, "WARNING", None),
    ({"status": 503, "completed": True, "reason": "draining"}, "WARNING", "draining"),
])
def test_the_access_log_line(fields, level, reason, caplog, monkeypatch):
    record = RequestRecord("POST", URL, started=10.0, **fields)
    line = log_line(record, caplog, monkeypatch, now=10.0123456)
    assert (line.levelname, line.reason, line.method, line.path) == (level, reason, "POST", URL)
    assert line.stream is fields.get("stream", False) and line.request_id == "r-1"
    assert line.status == record.outcome() and line.latency_ms == 12.3  # ms, one decimal


def test_a_401_says_how_to_authenticate_and_nothing_about_retrying():
    settings = ApiSettings.load()
    app = create_app(OpenAIServingChat(settings, ContractAgent(settings.agent)),
                     keys=KeyRing(parse_keys("ci:sk-test-0123456789abcdef")))
    resp = TestClient(app).post(URL, json={"model": "sui-react", "messages": [{"role": "user", "content": "隋？"}]})
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert "retry-after" not in resp.headers
    assert resp.json()["error"]["message"] == "invalid or missing API key (send 'Authorization: Bearer <key>')"


def test_a_requests_access_log_line_names_its_method(caplog):
    settings = ApiSettings.load()
    client = TestClient(create_app(OpenAIServingChat(settings, ContractAgent(settings.agent))))
    with caplog.at_level(logging.INFO, logger="deployments.metrics"):
        client.get("/v1/models")
        client.post(URL, json={"model": "sui-react", "messages": [{"role": "user", "content": "隋？"}]})
    lines = [r for r in caplog.records if r.getMessage() == "request"]
    assert [(r.method, r.path, r.status) for r in lines] == [("GET", "/v1/models", 200), ("POST", URL, 200)]


def test_the_app_path_leaves_out_the_route_prefix_only_where_it_is_one():
    assert _app_path({"path": "/api/v1/models", "root_path": "/api"}) == "/v1/models"
    assert _app_path({"path": "/v1/models", "root_path": "/api"}) == "/v1/models"  # not under the prefix
    assert _app_path({"path": "/v1/models", "root_path": ""}) == _app_path({"path": "/v1/models"}) == "/v1/models"

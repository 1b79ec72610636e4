"""The pipeline's own metrics and logs at the ingress (no Ray, no vLLM): every response counted once by status
(validation and routing 4xx, request-id 400s, client disconnects as 499, errors inside a started stream), the
rejection reasons, exact histogram sums, the in-flight gauge back at 0, the agent hooks, and one request id in every
JSON log line of a request."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from fastapi.testclient import TestClient

from deployments.agent_metrics import PrometheusAgentHooks
from deployments.api_router import create_app
from deployments.config import ApiSettings
from deployments.metrics import PipelineMetrics
from deployments.middleware import RequestRecord
from deployments.serving_chat import OpenAIServingChat
from react_tier import UpstreamError
from react_tier.results import AgentResult, AnswerDelta
from suiqa.logs import configure_json_logging
from tests.unit.deployments.helpers import RESULT, ContractAgent, requests_by, samples

URL = "/v1/chat/completions"
BODY = {"model": "sui-react", "messages": [{"role": "user", "content": "隋朝何时建立？"}]}


def app_with(agent=None) -> tuple[TestClient, PipelineMetrics]:
    metrics = PipelineMetrics()
    chat = OpenAIServingChat(ApiSettings.load(), agent or ContractAgent(), metrics)
    return TestClient(create_app(chat), raise_server_exceptions=False), metrics


def test_every_response_is_counted_once_by_status_and_stream():
    client, metrics = app_with()
    assert client.post(URL, json=BODY).status_code == 200
    assert client.post(URL, json={**BODY, "stream": True}).status_code == 200
    assert client.post(URL, content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    assert client.post(URL, content=b"\xff{", headers={"content-type": "application/json"}).status_code == 400
    assert client.post(URL, json={**BODY, "n": 2}).status_code == 400                       # validation
    assert client.post(URL, json={**BODY, "model": "gpt-4"}).status_code == 404              # unknown model
    assert client.post(URL, json=BODY, headers={"X-Request-Id": "bad id!"}).status_code == 400
    assert client.get("/v1/nothing").status_code == 404
    assert client.get(URL).status_code == 405
    assert client.get("/v1/models").status_code == 200
    for probe in ("/health", "/ready", "/health"):  # probes are not traffic
        client.get(probe)
    assert requests_by(metrics) == {("200", "false"): 2, ("200", "true"): 1, ("400", "false"): 4,
                                    ("404", "false"): 2, ("405", "false"): 1}
    rejected = {dict(labels)["reason"]: v for (name, labels), v in samples(metrics).items()
                if name == "sui_rejected_total"}
    assert rejected == {"invalid_json": 2, "invalid_request": 1, "invalid_request_id": 1, "not_found": 2,
                        "method_not_allowed": 1}
    s = samples(metrics)
    assert s[("sui_request_e2e_seconds_count", (("stream", "false"),))] == 1
    assert s[("sui_request_e2e_seconds_count", (("stream", "true"),))] == 1
    assert s[("sui_requests_in_flight", ())] == 0
    # the latency since the request arrived: positive, and less than this test has run (not a clock reading)
    for stream in ("false", "true"):
        e2e = s[("sui_request_e2e_seconds_sum", (("stream", stream),))]
        assert 0 < e2e < 60 and e2e >= s[("sui_request_ttft_seconds_sum", (("stream", stream),))]


def test_an_error_inside_a_started_stream_counts_with_its_status():
    client, metrics = app_with(ContractAgent(fail=UpstreamError("agent LLM timed out", 504), fail_after=1))
    resp = client.post(URL, json={**BODY, "stream": True})
    assert resp.status_code == 200 and '"code":504' in resp.text.replace(" ", "")
    assert requests_by(metrics) == {("504", "true"): 1}
    assert ("sui_request_e2e_seconds_count", (("stream", "true"),)) not in samples(metrics)


class SlowAgent(ContractAgent):
    """Streams one delta, then takes its time (a client gives up meanwhile)."""

    async def stream(self, request):
        async for event in super().stream(request):
            if isinstance(event, AnswerDelta):
                await asyncio.sleep(30)
            yield event


class ProxyRequestGone(Exception):
    """Stands for the error Serve's replica re-raises from ``receive`` once the proxy has dropped the request."""


async def _call(app, receive_script, *, leave: str) -> list[dict]:
    """Drive the ASGI app directly: ``receive_script`` are the messages the client sends; after the first SSE chunk
    the client leaves, as ``leave`` says: ``disconnect`` (an ``http.disconnect`` message), ``cancelled`` (Ray Serve's
    proxy cancels the replica's request), ``receive_error`` (reading the client's messages raises), ``send_error``
    (writing to the connection raises, as uvicorn's OSError)."""
    sent: list[dict] = []
    queue: asyncio.Queue = asyncio.Queue()
    for message in receive_script:
        queue.put_nowait(message)
    left = asyncio.Event()

    async def receive():
        message = await queue.get()
        if isinstance(message, Exception):
            raise message
        return message

    async def send(message):
        if left.is_set() and leave == "send_error":
            raise OSError("connection reset by peer")
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body", b"").count(b"data:"):
            left.set()
            if leave == "disconnect":
                queue.put_nowait({"type": "http.disconnect"})
            elif leave == "receive_error":
                queue.put_nowait(ProxyRequestGone("the proxy no longer has this request"))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": URL, "raw_path": URL.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"x-request-id", b"gone-1")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    task = asyncio.create_task(app(scope, receive, send))
    if leave == "cancelled":
        await left.wait()
        task.cancel()
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), timeout=10)
    return sent


@pytest.mark.parametrize("leave", ["disconnect", "cancelled", "receive_error", "send_error"])
async def test_a_client_that_leaves_mid_stream_counts_as_499(leave, caplog):
    metrics = PipelineMetrics()
    agent = SlowAgent() if leave != "send_error" else ContractAgent()  # a send needs something to send
    app = create_app(OpenAIServingChat(ApiSettings.load(), agent, metrics))
    body = json.dumps({**BODY, "stream": True}).encode()
    with caplog.at_level("INFO", logger="deployments.metrics"):
        sent = await _call(app, [{"type": "http.request", "body": body, "more_body": False}], leave=leave)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert requests_by(metrics) == {("499", "true"): 1}
    assert samples(metrics)[("sui_requests_in_flight", ())] == 0
    line = next(r for r in caplog.records if r.getMessage() == "request")
    assert line.status == 499 and line.levelname == "INFO"
    assert line.error == {"receive_error": "ProxyRequestGone", "send_error": "OSError"}.get(leave)


@pytest.mark.parametrize(("fields", "status"), [
    ({"status": 200, "completed": True}, 200),
    ({"status": 200, "completed": True, "error_status": 504}, 504),        # an error inside the stream
    ({"status": 200}, 499),                                                # left before the last byte
    ({}, 499),                                                             # ... before the status line
    ({"status": 503}, 503),                                                # a 5xx the client did not wait for
    ({"status": 200, "failed": True}, 500),                                # the app raised: a bug
    ({"status": 200, "failed": True, "client_gone": True}, 499),           # ... because the client had left
    ({"failed": True, "client_gone": True}, 499),
    ({"status": 200, "failed": True, "client_gone": True, "error_status": 502}, 502),
    ({"status": 502, "failed": True, "client_gone": True}, 502),
    ({"failed": True}, 500),
    ({"status": 500, "failed": True, "client_gone": True}, 500),           # a 5xx sent: not the client's leaving
    ({"status": 500}, 500),                                                # a 5xx the client did not wait for
    ({"status": 499}, 499),
    ({"completed": True}, 500),                                            # completed without a status line
])
def test_the_outcome_of_a_request(fields, status):
    assert RequestRecord("POST", URL, **fields).outcome() == status


def test_histogram_sums_are_exact():
    metrics = PipelineMetrics()
    for value in (1.2, 0.3, 7.7):
        metrics.e2e.labels("false").observe(value)
    s = samples(metrics)
    assert s[("sui_request_e2e_seconds_sum", (("stream", "false"),))] == pytest.approx(9.2)
    # Ray's metrics agent reported midpoints: 1.75 + 0.375 + 6.5 (buckets 1-2.5, 0.25-0.5, 5-8)
    assert s[("sui_request_e2e_seconds_bucket", (("le", "8.0"), ("stream", "false")))] == 3


async def test_agent_hooks_fill_the_agent_series():
    metrics = PipelineMetrics()
    hooks = PrometheusAgentHooks(metrics)
    await hooks.on_llm_call("domain", 0.2, {"prompt_tokens": 10, "completion_tokens": 4}, None)
    await hooks.on_llm_call("agent", 1.0, None, "APITimeoutError")
    await hooks.on_tool_end("search_knowledge", 0.0015, True)
    await hooks.on_tool_end("ask_sui_expert", 0.8, False)
    await hooks.on_parse_error("no Action", "???")
    await hooks.on_run_end(RESULT.model_copy(update={"truncated": True}), 2.0)
    await hooks.on_run_end(AgentResult(answer="x", finish_reason="degraded", truncated=True,
                                       grounding={"score": 0.25}), 2.0)
    metrics.observe_grounding(1.4)
    s = samples(metrics)
    assert s[("sui_upstream_tokens_total", (("kind", "prompt"), ("tier", "domain")))] == 10
    assert s[("sui_upstream_errors_total", (("tier", "agent"),))] == 1
    assert s[("sui_kb_search_seconds_count", ())] == 1 and s[("sui_kb_search_seconds_sum", ())] == 0.0015
    assert s[("sui_tool_latency_seconds_count", (("outcome", "error"), ("tool", "ask_sui_expert")))] == 1
    assert s[("sui_parse_errors_total", ())] == 1
    assert s[("sui_finish_reasons_total", (("finish_reason", "length"),))] == 1
    assert s[("sui_finish_reasons_total", (("finish_reason", "degraded"),))] == 1
    assert s[("sui_agent_steps_sum", ())] == 1
    assert s[("sui_grounding_score_sum", ())] == 1.75 and s[("sui_grounding_score_count", ())] == 3  # 0.5 + 0.25 + 1


def test_every_log_line_of_a_request_carries_its_id():
    out = io.StringIO()
    handler = configure_json_logging(("deployments", "react_tier"), stream=out)
    try:
        client, _ = app_with()
        assert client.post(URL, json=BODY, headers={"X-Request-Id": "trace-me-1"}).status_code == 200
        assert client.post(URL, json={**BODY, "n": 2}, headers={"X-Request-Id": "trace-me-2"}).status_code == 400
        client.get("/health")
    finally:
        for name in ("deployments", "react_tier"):
            import logging

            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).propagate = True
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["event"], x["request_id"]) for x in lines] == [
        ("request_accepted", "trace-me-1"), ("request", "trace-me-1"), ("request", "trace-me-2")]
    done = lines[1]
    assert done["status"] == 200 and done["path"] == URL and done["latency_ms"] >= 0 and done["level"] == "info"
    assert lines[2]["status"] == 400 and lines[2]["reason"] == "invalid_request"


@pytest.mark.parametrize("stream", [False, True])
async def test_latency_counts_from_the_ingress_receipt_not_from_the_handler(stream):
    """Time a request waits between the ingress's receipt and the chat handler (a busy replica's queue) is part
    of its e2e latency and of its time to first token."""
    from deployments.middleware import RequestMetricsMiddleware
    from deployments.protocol import ChatCompletionRequest

    metrics = PipelineMetrics()
    chat = OpenAIServingChat(ApiSettings.load(), ContractAgent(), metrics)
    request = ChatCompletionRequest.model_validate({**BODY, "stream": stream})

    async def queued_handler(scope, receive, send):
        await asyncio.sleep(0.3)
        if stream:
            body = "".join([part async for part in await chat.stream(request, "req-1")]).encode()
        else:
            body = (await chat.create(request, "req-1")).model_dump_json().encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    await RequestMetricsMiddleware(queued_handler)({"type": "http", "method": "POST", "path": URL, "headers": []},
                                                   receive, send)
    s = samples(metrics)
    label = (("stream", "true" if stream else "false"),)
    assert s[("sui_request_e2e_seconds_sum", label)] >= 0.3
    assert s[("sui_request_ttft_seconds_sum", label)] >= 0.3

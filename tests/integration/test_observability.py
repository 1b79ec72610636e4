"""Observability end to end on the shared stack (`suiqa up --profile cpu-tiny-shared --with-prometheus`): a real
Prometheus (Debian's package) scrapes the pipeline endpoint, both vLLM tier jobs and Ray; its HTTP API returns the
pipeline's request and latency series, vLLM's series for both tiers and a recording rule's value; every response is
counted by status (4xx included); and one request id is followed through the ingress log, the agent log and the
vLLM calls (vLLM answered with its response id ``chatcmpl-<the X-Request-Id we sent>``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from suiqa.logs import read_json_lines

pytestmark = pytest.mark.integration
QUESTION = "隋炀帝为什么开凿大运河？"


@pytest.fixture(scope="module")
def traffic(stack) -> dict:
    """A few requests of every kind, sent once for the module: {'rid': the traced request id, ...}."""
    urls, _ = stack
    client = OpenAI(base_url=urls["api"], api_key="unused", max_retries=0, timeout=180)
    rid = f"obs-{uuid.uuid4().hex[:12]}"
    raw = client.chat.completions.with_raw_response.create(
        model=urls["model"], messages=[{"role": "user", "content": QUESTION}], extra_headers={"X-Request-Id": rid})
    completion = raw.parse()
    streamed = list(client.chat.completions.create(model=urls["model"], stream=True,
                                                   messages=[{"role": "user", "content": QUESTION}]))
    api = urls["api"]
    bad_json = httpx.post(f"{api}/chat/completions", content=b"{oops", timeout=30,
                          headers={"content-type": "application/json"})
    unknown = httpx.get(f"{api}/nothing-here", timeout=30)
    return {"rid": rid, "header": raw.headers.get("x-request-id"), "completion": completion, "streamed": streamed,
            "statuses": (bad_json.status_code, unknown.status_code)}


def _pipeline_samples(url: str) -> dict[tuple, float]:
    text = httpx.get(url, timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_pipeline_endpoint_counts_every_response_by_status(stack, traffic):
    urls, _ = stack
    assert traffic["statuses"] == (400, 404)
    s = _pipeline_samples(urls["metrics_pipeline"])
    count = {(dict(k)["status"], dict(k)["stream"]): v for (name, k), v in s.items() if name == "sui_requests_total"}
    assert count.get(("200", "false"), 0) >= 1 and count.get(("200", "true"), 0) >= 1
    assert count.get(("400", "false"), 0) >= 1 and count.get(("404", "false"), 0) >= 1
    assert s[("sui_rejected_total", (("reason", "invalid_json"),))] >= 1
    e2e_sum = s[("sui_request_e2e_seconds_sum", (("stream", "false"),))]
    e2e_count = s[("sui_request_e2e_seconds_count", (("stream", "false"),))]
    assert e2e_count >= 1 and 0 < e2e_sum / e2e_count < 120
    assert s[("sui_llm_call_seconds_count", (("tier", "agent"),))] >= 1
    assert s[("sui_llm_call_seconds_count", (("tier", "domain"),))] >= 1


def _query(prometheus: str, expr: str) -> list[dict]:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def _why_no_rate(prometheus: str, metrics_url: str) -> str:
    """What Prometheus and the endpoint hold when a rate stays zero: short enough not to be cut by pytest."""
    def values(expr: str) -> list:
        return [(r["metric"].get("instance"), [v for _, v in r["values"]]) for r in _query(prometheus, expr)]
    endpoint = {dict(k)["status"] + "/" + dict(k)["stream"]: v
                for (name, k), v in _pipeline_samples(metrics_url).items() if name == "sui_requests_total"}
    series = values('sui_requests_total{status="404"}[2m]')
    up = values('up{job="sui-pipeline"}[2m]')
    rule = values('sui:requests:rate5m{status="404"}[2m]')
    return f"404 series: {series}; endpoint now: {endpoint}; up: {up}; rule: {rule}"


def test_prometheus_scrapes_every_tier_and_evaluates_the_rules(stack, traffic):
    urls, _ = stack
    prometheus = urls["prometheus"]
    wanted = {
        "pipeline requests": 'sui_requests_total{job="sui-pipeline", status="200"}',
        "pipeline latency": 'sui_request_e2e_seconds_count{job="sui-pipeline"}',
        "pipeline ttft": 'sui_request_ttft_seconds_bucket{job="sui-pipeline"}',
        "domain vLLM": 'vllm:num_requests_running{job="vllm-domain"}',
        "agent vLLM": 'vllm:generation_tokens_total{job="vllm-agent"}',
        "ray up": 'up{job="ray"} == 1',
        "recording rule": "sui:requests:rate5m",
        "recording rule by tier": "job:vllm_num_requests_running:sum",
    }
    deadline = time.monotonic() + 90  # scrape and rule intervals are 5 s; a rate needs two scrapes
    missing = dict(wanted)
    while missing and time.monotonic() < deadline:
        missing = {name: expr for name, expr in missing.items() if not _query(prometheus, expr)}
        if missing:
            time.sleep(3)
    assert not missing, f"Prometheus returned nothing for {missing}"
    # the 404 series exists (the fixture's request): while more 404s arrive, its rate (a recording rule over two
    # scrapes) becomes positive. One request every poll, not one in all: the test is about the rule; that every
    # response is counted once is the first test's and tests/unit/deployments/test_metrics.py's.
    deadline = time.monotonic() + 60
    while True:
        assert httpx.get(f"{urls['api']}/nothing-here", timeout=30).status_code == 404
        if _query(prometheus, 'sui:requests:rate5m{status="404"} > 0'):
            break
        assert time.monotonic() < deadline, _why_no_rate(prometheus, urls["metrics_pipeline"])
        time.sleep(3)
    # every target's last scrape succeeded (polled: a scrape that overran its 5 s on a loaded machine recovers)
    deadline = time.monotonic() + 30
    while True:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        health = {t["labels"]["job"]: (t["health"], t.get("lastError"), t.get("lastScrape")) for t in targets}
        if {job for job, (state, _, _) in health.items() if state == "up"} == \
                {"sui-pipeline", "vllm-domain", "vllm-agent", "ray"}:
            break
        assert time.monotonic() < deadline, health
        time.sleep(2)


def test_one_request_id_through_ingress_agent_and_vllm(stack, traffic):
    urls, _ = stack
    rid = traffic["rid"]
    assert traffic["header"] == rid and traffic["completion"].id == f"chatcmpl-{rid}"
    deadline = time.monotonic() + 10
    while True:  # the final `request` line is written after the last byte has left
        lines = [x for x in read_json_lines(urls["logs_pipeline"]) if x.get("request_id") == rid]
        if any(x["event"] == "request" for x in lines) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    events = [(x["logger"], x["event"]) for x in lines]
    assert ("deployments.serving_chat", "request_accepted") in events          # the ingress
    assert ("react_tier.agent", "run_start") in events and ("react_tier.agent", "run_end") in events  # the agent
    assert ("react_tier.agent", "step") in events
    assert ("deployments.metrics", "request") in events
    done = next(x for x in lines if x["event"] == "request")
    assert done["status"] == 200 and done["path"] == "/v1/chat/completions"
    calls = [x for x in lines if x["event"] == "llm_call"]
    assert {c["tier"] for c in calls} == {"domain", "agent"}
    for call in calls:  # vLLM took our X-Request-Id as its request id: its response id is chatcmpl-<that id>
        assert call["call_id"].startswith(f"{rid}.") and call["status"] in (200, "closed_by_caller")
        assert call["upstream_id"] == f"chatcmpl-{call['call_id']}", call
        assert call["latency_ms"] > 0
    # no other request's lines leaked into this id, and probes are not logged
    assert all(x.get("path") not in ("/health", "/ready", "/metrics")
               for x in read_json_lines(urls["logs_pipeline"]) if x["event"] == "request")


def test_a_client_that_leaves_is_counted_as_499(stack, traffic):
    """The client leaves before the answer (a time-out or a closed tab): Serve's proxy cancels the replica's
    request and the ingress counts it once as 499, streamed or not. The client leaves once the replica holds the
    request (a stream: after its role chunk; else: the ingress has logged ``request_accepted`` for its request id,
    a local file read every 10 ms: a run here takes ~1-8 s), so neither a proxy slow to route on a loaded machine
    nor a run that ends first can turn the test into one about another outcome."""
    urls, _ = stack
    log_path = Path(urls["logs_pipeline"])

    def samples(name: str) -> dict[str, float]:
        return {dict(k).get("stream", ""): v for (n, k), v in _pipeline_samples(urls["metrics_pipeline"]).items()
                if n == name and dict(k).get("status", "499") == "499"}

    start = log_path.stat().st_size  # polled every 10 ms: parse only what this test's requests append

    def accepted(rid: str) -> bool:
        return any(e.get("request_id") == rid and e.get("event") == "request_accepted"
                   for e in read_json_lines(log_path, offset=start))

    async def leave(stream: bool) -> None:
        rid = f"leave-{uuid.uuid4().hex[:12]}"
        async with httpx.AsyncClient(timeout=60) as http:
            async def ask() -> None:
                async with http.stream("POST", f"{urls['api']}/chat/completions", headers={"X-Request-Id": rid},
                                       json={"model": urls["model"], "stream": stream,
                                             "messages": [{"role": "user", "content": QUESTION}]}) as resp:
                    async for line in resp.aiter_lines():
                        if line.startswith("data:"):
                            return  # the role chunk came: leave with the answer still to come
                    pytest.fail(f"the request ended before the client left: {resp.status_code}")

            task = asyncio.create_task(ask())
            if stream:
                await asyncio.wait_for(task, 60)
                return
            deadline = time.monotonic() + 60
            while not accepted(rid):
                assert not task.done() and time.monotonic() < deadline, "the request never reached the ingress"
                await asyncio.sleep(0.01)
            task.cancel()

    before = samples("sui_requests_total")
    for stream in (False, True):
        asyncio.run(leave(stream))
    deadline = time.monotonic() + 60
    while True:
        after = samples("sui_requests_total")
        if all(after.get(k, 0) >= before.get(k, 0) + 1 for k in ("false", "true")) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert after.get("false", 0) == before.get("false", 0) + 1 and after.get("true", 0) == before.get("true", 0) + 1

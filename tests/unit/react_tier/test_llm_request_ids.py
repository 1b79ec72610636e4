"""Request ids past the ingress: the vLLM profile renders --enable-request-id-headers; the LLM client sends
``X-Request-Id: <request id>.<tier><n>`` on every attempt (retries included) and logs each attempt with vLLM's response
id; a whole agent run (against the scripted OpenAI server) writes JSON lines that all carry the run's id, and two
concurrent runs never mix ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import httpx
import openai

from react_tier import AgentSettings, ReActAgent
from react_tier.llm import LLMClient
from react_tier.request import AgentRequest
from react_tier.settings import LLMEndpointSettings
from serving.config import load_profile
from suiqa.logs import configure_json_logging, request_context
from tests.scripted_openai import ScriptedOpenAI
from tests.unit.react_tier.helpers import FakeKnowledgeBase

SEARCH = 'Thought: 需要查资料\nAction: search_knowledge\nAction Input: {"query": "大业 开通济渠"}'
ANSWER = "Thought: 我现在知道最终答案了\nFinal Answer: 隋炀帝于大业元年开通济渠 [suishu:3:1]。"


def capture_logs() -> tuple[io.StringIO, logging.Handler]:
    out = io.StringIO()
    return out, configure_json_logging(("react_tier",), stream=out)


def release(handler: logging.Handler) -> None:
    logger = logging.getLogger("react_tier")
    logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def test_vllm_profiles_render_the_request_id_flag():
    for name in ("cpu-tiny", "cpu-tiny-agent", "gpu-internlm2-1_8b", "gpu-qwen2_5-1_5b-agent"):
        assert "--enable-request-id-headers" in load_profile(name).command()
    assert "--enable-request-id-headers" not in load_profile("cpu-tiny", request_id_headers=False).command()


async def test_every_attempt_sends_its_own_id_and_is_logged():
    seen: list[str] = []

    def vllm_like(request: httpx.Request) -> httpx.Response:  # like vLLM: 503 once, then chatcmpl-<X-Request-Id>
        seen.append(request.headers.get("x-request-id"))
        if len(seen) == 1:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        return httpx.Response(200, json={
            "id": f"chatcmpl-{seen[-1]}", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})

    client = LLMClient("domain", LLMEndpointSettings(base_url="http://vllm/v1", model="m", retry_backoff_s=0.01))
    client.client = openai.AsyncOpenAI(base_url="http://vllm/v1", api_key="x", max_retries=0,
                                       http_client=httpx.AsyncClient(transport=httpx.MockTransport(vllm_like)))
    out, handler = capture_logs()
    try:
        with request_context("req-42"):
            await client.complete([{"role": "user", "content": "q"}])
        await client.complete([{"role": "user", "content": "q"}])   # outside a request: vLLM makes its own id
    finally:
        release(handler)
        await client.aclose()
    assert seen[:2] == ["req-42.d1", "req-42.d2"] and seen[2] is None
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["event"], x["request_id"], x["call_id"], x["status"]) for x in lines[:2]] == [
        ("llm_call", "req-42", "req-42.d1", 503), ("llm_call", "req-42", "req-42.d2", 200)]
    assert lines[0]["level"] == "warning" and lines[1]["level"] == "info"
    assert lines[1]["upstream_id"] == "chatcmpl-req-42.d2" and lines[1]["latency_ms"] > 0
    assert lines[2]["request_id"] is None


async def test_a_run_logs_every_event_with_its_request_id_and_concurrent_runs_do_not_mix():
    with ScriptedOpenAI() as server:
        for _ in range(2):
            server.script("domain", "草稿")
        server.script("agent", SEARCH, SEARCH, ANSWER, ANSWER)
        endpoint = {"base_url": server.base_url, "timeout_s": 5, "retry_backoff_s": 0.01}
        settings = AgentSettings.load(domain_llm={**endpoint, "model": "domain"},
                                      agent_llm={**endpoint, "model": "agent"})
        agent = ReActAgent.from_settings(settings, knowledge_base=FakeKnowledgeBase())
        out, handler = capture_logs()
        try:
            await asyncio.gather(*(agent.run(AgentRequest(question="大运河是谁开凿的？", request_id=rid))
                                   for rid in ("run-a", "run-b")))
        finally:
            release(handler)
            await agent.aclose()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    steps = 0
    for rid in ("run-a", "run-b"):
        mine = [x for x in lines if x["request_id"] == rid]
        events = [x["event"] for x in mine if x["event"] != "llm_call"]
        # the two runs share one script queue (SEARCH, SEARCH, ANSWER, ANSWER): which run takes which reply
        # depends on timing, so a run has 1-3 steps; together they take the four replies
        assert events[0] == "run_start" and events[-1] == "run_end" and set(events[1:-1]) == {"step"}, events
        steps += len(events) - 2
        calls = [x for x in mine if x["event"] == "llm_call"]
        assert {x["tier"] for x in calls} == {"domain", "agent"}
        assert all(x["call_id"].startswith(f"{rid}.") for x in calls)
    assert steps == 4
    assert all(x["request_id"] in ("run-a", "run-b") for x in lines)


async def test_each_step_is_logged_with_its_fields_and_handed_to_the_hooks():
    from react_tier.hooks import AgentHooks

    class Steps(AgentHooks):
        def __init__(self) -> None:
            self.steps = []

        def on_step(self, step):
            self.steps.append(step)

    hooks = Steps()
    with ScriptedOpenAI() as server:
        server.script("domain", "草稿")
        server.script("agent", "no labels at all", SEARCH, ANSWER)
        endpoint = {"base_url": server.base_url, "timeout_s": 5, "retry_backoff_s": 0.01}
        settings = AgentSettings.load(domain_llm={**endpoint, "model": "domain"},
                                      agent_llm={**endpoint, "model": "agent"})
        agent = ReActAgent.from_settings(settings, hooks=[hooks], knowledge_base=FakeKnowledgeBase())
        out, handler = capture_logs()
        try:
            result = await agent.run(AgentRequest(question="大运河是谁开凿的？", request_id="run-s"))
        finally:
            release(handler)
            await agent.aclose()
    assert hooks.steps == result.steps and len(result.steps) == 3
    logged = [json.loads(line) for line in out.getvalue().splitlines()]
    logged = [x for x in logged if x["event"] == "step"]
    assert [(x["level"], x["step"], x["tool"], x["forced"], x["error"] is None) for x in logged] == [
        ("warning", 0, None, False, False), ("info", 1, "search_knowledge", False, True),
        ("info", 2, None, False, True)]
    for x, step in zip(logged, result.steps, strict=True):
        assert x["latency_ms"] == round(step.latency_s * 1000, 1) and x["error"] == step.error

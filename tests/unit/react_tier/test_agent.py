"""The ReAct loop against a scripted OpenAI-compatible server (real HTTP on 127.0.0.1) and a fake knowledge base."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from pydantic import ValidationError

from react_tier import AgentHooks, AgentInputError, AgentSettings, ReActAgent, UpstreamError
from react_tier.request import AgentRequest, RequestLimits
from react_tier.results import AgentResult, AnswerDelta, Done, StepFinished, StepStarted
from tests.scripted_openai import Reply
from tests.support import free_port
from tests.unit.react_tier.helpers import ANSWER, SEARCH, FakeKnowledgeBase, endpoint, make_agent


async def test_two_step_answer_with_citations(scripted):
    scripted.script("domain", "隋炀帝开凿了大运河。")
    scripted.script("agent", SEARCH, ANSWER)
    agent, hooks = make_agent(scripted)
    result = await agent.run(AgentRequest(question="大运河是谁开凿的？", request_id="r1"))
    await agent.aclose()

    assert result.finish_reason == "stop" and result.request_id == "r1"
    assert result.answer == "隋炀帝于大业元年开通济渠 [suishu:卷3:18]，参见 [made:up]。"
    assert [c.id for c in result.citations] == ["suishu:卷3:18"]          # invented [made:up] is dropped
    assert result.citations[0].source == "suishu"
    assert result.citations[0].text.startswith("徙天下富商大贾数万家于东京。")  # the passage, for display
    assert result.grounding.claims == 1 and result.grounding.unknown_ids == ["made:up"]
    assert result.draft == "隋炀帝开凿了大运河。"
    first = result.steps[0]
    assert first.tool == "search_knowledge" and first.tool_input == {"query": "大业 开通济渠"}
    assert "[suishu:卷3:18]" in first.observation and first.error is None
    assert result.usage["agent"].calls == 2 and result.usage["domain"].calls == 1
    assert result.usage["agent"].prompt_tokens == 22

    agent_requests = scripted.requests_for("agent")
    assert all("Observation:" in r["stop"] and r["stream"] for r in agent_requests)
    assert "领域模型初稿" in agent_requests[0]["messages"][-1]["content"]
    assert "隋炀帝开凿了大运河。" in agent_requests[0]["messages"][-1]["content"]
    assert agent_requests[1]["messages"][-1]["content"].startswith("Observation: [suishu:卷3:18]")
    assert hooks.calls[0] == ("run_start", "r1") and hooks.calls[-1] == ("run_end", "stop")
    assert ("tool", "search_knowledge", True) in hooks.calls
    json.dumps(result.model_dump())  # JSON-serialisable


async def test_a_run_routes_by_its_request_id_and_releases_it_on_both_tiers(scripted):
    """Run-affine routing (react_tier/routing.py): a run's key is its request id, the one AgentRequest.checked
    sets; when the run ends both tiers release that key (the bounded-load count of runs in flight)."""
    scripted.script("domain", "草稿", "草稿")
    scripted.script("agent", ANSWER, ANSWER)
    agent, _ = make_agent(scripted)
    released = []
    agent.agent_llm.release_run = lambda key: released.append(("agent", key))
    agent.domain_llm.release_run = lambda key: released.append(("domain", key))
    await agent.run(AgentRequest(question="大运河是谁开凿的？", request_id="run-7"))
    unnamed = await agent.run("谁开凿了通济渠？")  # no id given: checked() made one, and the run used it
    await agent.aclose()
    assert released[:2] == [("agent", "run-7"), ("domain", "run-7")]
    assert released[2:] == [("agent", unnamed.request_id), ("domain", unnamed.request_id)] and unnamed.request_id


async def test_stream_events_and_answer_deltas(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", SEARCH, ANSWER)
    agent, _ = make_agent(scripted)
    events = [event async for event in agent.stream("大运河是谁开凿的？")]
    await agent.aclose()

    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["StepStarted", "StepFinished"] and kinds[-1] == "Done"
    done = events[-1]
    assert isinstance(done, Done)
    deltas = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    assert deltas == done.result.answer and len([e for e in events if isinstance(e, AnswerDelta)]) > 1
    assert [e.index for e in events if isinstance(e, StepStarted)] == [0, 1]
    assert all(isinstance(e, (StepStarted, StepFinished, AnswerDelta, Done)) for e in events)
    AgentResult.model_validate_json(done.result.model_dump_json())


async def test_parse_error_is_fed_back_and_recovered(scripted):
    scripted.script("agent", "隋朝是杨坚建立的。", 'Action: google\nAction Input: {"q": "x"}', ANSWER)
    agent, hooks = make_agent(scripted, draft_first=False)
    started = time.monotonic()
    result = await agent.run("隋朝是谁建立的？")
    elapsed = time.monotonic() - started
    await agent.aclose()

    assert result.finish_reason == "stop" and result.draft is None
    assert [s.error is not None for s in result.steps] == [True, True, False]
    assert 0 < result.steps[0].latency_s < elapsed  # a failed step's time too
    assert result.steps[0].error.startswith("parse:") and "不存在" in result.steps[1].error
    second, third = scripted.requests_for("agent")[1:]
    assert "没有找到 Action" in second["messages"][-1]["content"]
    assert second["messages"][-2] == {"role": "assistant", "content": "隋朝是杨坚建立的。"}  # its own output, fed back
    assert "search_knowledge" in third["messages"][-1]["content"]  # the unknown-tool feedback lists real tools
    # the hook gets the parser's own message (the one fed back to the model) and the raw output
    error = next(c[2] for c in hooks.calls if c[0] == "parse_error")
    assert next(c[:2] for c in hooks.calls if c[0] == "parse_error") == ("parse_error", "隋朝是杨坚建立的。")
    assert error in second["messages"][-1]["content"] and "Action" in error
    assert scripted.requests_for("domain") == []


async def test_repeated_parse_errors_give_up_with_a_forced_answer(scripted):
    scripted.script("agent", "胡言乱语", "胡言乱语", "胡言乱语", "Final Answer: 尽力而为的答案")
    agent, _ = make_agent(scripted, draft_first=False, max_parse_retries=2, max_steps=5)
    result = await agent.run("隋朝是谁建立的？")
    await agent.aclose()
    assert result.finish_reason == "degraded" and result.answer == "尽力而为的答案"
    assert len(result.steps) == 3 and len(scripted.requests_for("agent")) == 4


async def test_a_good_turn_resets_the_count_of_consecutive_parse_errors(scripted):
    scripted.script("agent", "胡言乱语", SEARCH, "胡言乱语", ANSWER)
    agent, _ = make_agent(scripted, draft_first=False, max_parse_retries=1, max_steps=5)
    result = await agent.run("隋朝是谁建立的？")
    await agent.aclose()
    assert result.finish_reason == "stop" and [s.error is not None for s in result.steps] == [True, False, True, False]


async def test_step_cap_gives_best_effort_answer_from_evidence(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", SEARCH, SEARCH, "Thought: 够了\nFinal Answer: 据 [suishu:卷3:18]，是隋炀帝。")
    agent, _ = make_agent(scripted, max_steps=2)
    result = await agent.run("大运河是谁开凿的？")
    await agent.aclose()

    assert result.finish_reason == "max_steps" and result.answer == "据 [suishu:卷3:18]，是隋炀帝。"
    assert len(result.steps) == 2 and [c.id for c in result.citations] == ["suishu:卷3:18"]
    forced = scripted.requests_for("agent")[-1]["messages"][-1]["content"]
    assert "已达到步数上限" in forced and "不要再调用工具" in forced


async def test_step_cap_and_failed_forced_call_fall_back_to_draft_and_evidence(scripted):
    scripted.script("domain", "草稿：隋炀帝。")
    scripted.script("agent", SEARCH, Reply(status=500), Reply(status=500))
    agent, _ = make_agent(scripted, max_steps=1, agent_llm=endpoint(scripted.base_url, "agent", max_retries=1))
    result = await agent.run("大运河是谁开凿的？")
    await agent.aclose()

    assert result.finish_reason == "degraded"
    assert result.answer.startswith("参考资料：\n[suishu:卷3:18]") and result.answer.endswith("草稿：隋炀帝。")
    assert "suishu:卷3:18" in [c.id for c in result.citations]


async def test_tool_timeout_becomes_an_observation(scripted):
    scripted.script("agent", 'Thought: 试试\nAction: slow_tool\nAction Input: {"query": "x"}', ANSWER)
    slow = {"path": "tests.unit.react_tier.helpers:SlowTool", "kwargs": {"sleep_s": 30}}
    agent, hooks = make_agent(scripted, draft_first=False, tool_timeout_s=0.2, extra_tools=[slow])
    started = time.monotonic()
    result = await agent.run("测试")
    await agent.aclose()

    assert time.monotonic() - started < 5
    assert result.finish_reason == "stop"
    assert result.steps[0].tool == "slow_tool" and result.steps[0].error == "timeout"
    assert "超时" in result.steps[0].observation
    assert ("tool", "slow_tool", False) in hooks.calls
    assert "slow_tool" in scripted.requests_for("agent")[0]["messages"][0]["content"]  # offered in the prompt


async def test_tool_errors_and_bad_inputs_become_observations(scripted):
    scripted.script("agent", 'Action: lookup_poem\nAction Input: {"k": 1}',
                    "Action: search_knowledge\nAction Input: 通济渠",
                    'Action: search_knowledge\nAction Input: {"query": "大业',
                    'Action: lookup_poem\nAction Input: {"author": "杨广"}', ANSWER)
    agent, _ = make_agent(scripted, draft_first=False, max_steps=6)
    result = await agent.run("测试")
    await agent.aclose()

    steps = result.steps
    assert steps[0].error.startswith("input:") and "至少需要" in steps[0].observation
    assert steps[1].tool_input == {"query": "通济渠"} and "[suishu:卷3:18]" in steps[1].observation
    assert "JSON" in steps[2].observation
    assert "[poem:sui#780]" in steps[3].observation and result.finish_reason == "stop"


async def test_upstream_500_is_retried(scripted):
    scripted.script("domain", Reply(status=503), "草稿")
    scripted.script("agent", Reply(status=500), Reply(status=502), ANSWER)
    agent, hooks = make_agent(scripted)
    result = await agent.run("测试")
    await agent.aclose()

    assert result.finish_reason == "stop" and result.draft == "草稿"
    assert len(scripted.requests_for("agent")) == 3 and len(scripted.requests_for("domain")) == 2
    errors = [c[2] for c in hooks.calls if c[:2] == ("llm", "agent")]
    assert errors == ["InternalServerError", "InternalServerError", None]


async def test_client_errors_are_not_retried_and_degrade_to_the_draft(scripted):
    scripted.script("domain", "草稿答案")
    scripted.script("agent", Reply(status=400))
    agent, _ = make_agent(scripted)
    result = await agent.run("测试")
    await agent.aclose()
    assert result.finish_reason == "degraded" and result.answer == "草稿答案"
    assert len(scripted.requests_for("agent")) == 1 and "BadRequestError" in result.steps[0].error


async def test_no_upstream_at_all_raises_upstream_error(scripted):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    agent, _ = make_agent(scripted, url=dead)
    with pytest.raises(UpstreamError) as info:
        await agent.run("测试")
    assert info.value.status_code == 503
    assert await agent.check_upstreams() == {"domain": False, "agent": False}
    await agent.aclose()


async def test_check_upstreams(scripted):
    """Ready = the tier lists the model name AND answers a 1-token completion."""
    agent, _ = make_agent(scripted)
    scripted.script("domain", "好")
    scripted.script("agent", "好")
    assert await agent.check_upstreams() == {"domain": True, "agent": True}
    assert [r["max_tokens"] for r in scripted.requests] == [1, 1]
    scripted.script("domain", Reply(status=500))  # up, lists the name, but cannot generate
    assert (await agent.check_upstreams())["domain"] is False
    await agent.aclose()
    renamed, _ = make_agent(scripted, agent_llm=endpoint(scripted.base_url, "qwen-agent"))
    scripted.script("domain", "好")
    assert await renamed.check_upstreams() == {"domain": True, "agent": False}  # served under other names
    await renamed.aclose()


@pytest.mark.parametrize("use_stream", [False, True])
async def test_cancellation_closes_the_upstream_request(scripted, use_stream):
    scripted.script("domain", "草稿")
    scripted.script("agent", Reply(hang=True))
    # a long read timeout: only the cancellation can close the request within the test's wait
    agent, _ = make_agent(scripted, agent_llm=endpoint(scripted.base_url, "agent", timeout_s=60))

    async def consume():
        if use_stream:
            return [event async for event in agent.stream("测试")]
        return await agent.run("测试")

    task = asyncio.create_task(consume())
    for _ in range(250):
        if scripted.hanging.is_set():
            break
        await asyncio.sleep(0.02)
    assert scripted.hanging.is_set() and scripted.disconnects == 0
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - cancelled_at < 1.0, "cancellation must not wait for the upstream"
    for _ in range(100):
        if scripted.disconnects:
            break
        await asyncio.sleep(0.02)
    assert scripted.disconnects == 1
    await agent.aclose()


async def test_deadline_cuts_a_slow_step_and_forces_an_answer(scripted):
    scripted.script("agent", Reply(hang=True), "Final Answer: 时间到了的答案")
    agent, _ = make_agent(scripted, draft_first=False, deadline_s=1.5, final_answer_reserve_s=0.7)
    started = time.monotonic()
    result = await agent.run("测试")
    await agent.aclose()
    assert time.monotonic() - started < 2.0
    assert result.finish_reason == "deadline" and result.answer == "时间到了的答案"
    await asyncio.sleep(0.3)
    assert scripted.disconnects == 1


async def test_always_search_first_is_a_visible_forced_step(scripted):
    scripted.script("agent", ANSWER)
    agent, _ = make_agent(scripted, draft_first=False, always_search_first=True)
    started = time.monotonic()
    result = await agent.run("通济渠是哪一年开的？")
    elapsed = time.monotonic() - started
    await agent.aclose()
    forced = result.steps[0]
    assert 0 < forced.latency_s < elapsed  # the search's own time, in seconds
    assert (forced.forced and forced.tool == "search_knowledge"
            and forced.tool_input == {"query": "通济渠是哪一年开的？"})
    assert "[suishu:卷3:18]" in forced.observation
    assert result.steps[1].index == 1 and [c.id for c in result.citations] == ["suishu:卷3:18"]
    assert "Observation: [suishu:卷3:18]" in scripted.requests_for("agent")[0]["messages"][-1]["content"]


@pytest.mark.parametrize("request_fields, message", [
    ({"question": ""}, "empty"),
    ({"question": "  "}, "empty"),
    ({"question": "x" * 2001}, "2001 characters; the limit is 2000"),
    ({"question": "ok", "history": [{"role": "user", "content": "x" * 16001}]}, "history exceeds 16000"),
    ({"question": "ok", "instructions": "x" * 4001}, "instructions exceed 4000"),
    ({"question": "ok", "max_steps": 21}, "above this tier's limit 20"),
])
async def test_bad_input_is_a_clear_error(scripted, request_fields, message):
    agent, _ = make_agent(scripted)
    with pytest.raises(AgentInputError, match=message):
        await agent.run(AgentRequest(**request_fields))
    await agent.aclose()
    assert scripted.requests == []


def test_question_at_the_limit_is_accepted():
    limits = RequestLimits()
    assert AgentRequest(question="x" * 2000).checked(limits).question == "x" * 2000
    assert AgentRequest(question="ok", history=[{"role": "user", "content": "x" * 16000}]).checked(limits)


@pytest.mark.parametrize("history", [[{"role": "system", "content": "x"}], "not a list",
                                     [{"role": "tool", "content": "x"}]])
def test_history_of_the_wrong_type_is_refused_by_the_type(history):
    with pytest.raises(ValidationError, match="history"):
        AgentRequest(question="ok", history=history)


async def test_history_is_passed_on(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", ANSWER)
    agent, _ = make_agent(scripted, limits={"max_history_messages": 2})
    history = [{"role": "user", "content": "旧问题0"}, {"role": "user", "content": "旧问题1"},
               {"role": "assistant", "content": "旧回答1"}]
    await agent.run(AgentRequest(question="测试", history=history))
    await agent.aclose()
    contents = [m["content"] for m in scripted.requests_for("agent")[0]["messages"]]
    assert "旧问题1" in contents and "旧回答1" in contents and "旧问题0" not in contents
    draft = [m["content"] for m in scripted.requests_for("domain")[0]["messages"]]  # the domain draft sees it too
    assert draft[1:] == ["旧问题1", "旧回答1", "测试"]


async def test_deadline_during_the_draft_still_answers(scripted):
    scripted.script("domain", Reply(hang=True))
    scripted.script("agent", "Final Answer: 没有草稿也回答")
    agent, _ = make_agent(scripted, deadline_s=1.2, final_answer_reserve_s=0.6,
                          domain_llm=endpoint(scripted.base_url, "domain", timeout_s=30))
    result = await agent.run("测试")
    await agent.aclose()
    assert result.finish_reason == "deadline" and result.draft is None
    assert result.answer == "没有草稿也回答" and result.steps == []
    assert "Question: 测试" in scripted.requests_for("agent")[0]["messages"][-2]["content"]


class BrokenHooks(AgentHooks):
    async def on_step(self, step):
        raise RuntimeError("metrics backend down")

    def on_run_end(self, result, latency_s):
        raise RuntimeError("metrics backend down")


async def test_a_broken_hook_does_not_break_the_run(scripted):
    scripted.script("agent", SEARCH, ANSWER)
    settings = AgentSettings.load(domain_llm=endpoint(scripted.base_url, "domain"),
                                  agent_llm=endpoint(scripted.base_url, "agent"), draft_first=False)
    agent = ReActAgent.from_settings(settings, hooks=[BrokenHooks()], knowledge_base=FakeKnowledgeBase())
    result = await agent.run("测试")
    await agent.aclose()
    assert result.finish_reason == "stop" and len(result.steps) == 2


async def test_max_tokens_cuts_the_answer_and_closes_the_upstream(scripted):
    """The scripted server counts one token per character and sends cumulative counts on every chunk (as vLLM
    does with continuous_usage_stats): the answer stops at the cap, in whole chunks, and is marked truncated."""
    scripted.script("domain", "草稿")
    scripted.script("agent", ANSWER)
    agent, _ = make_agent(scripted)
    events = [e async for e in agent.stream(AgentRequest(question="测试", generation={"max_tokens": 7}))]
    await agent.aclose()
    result = events[-1].result
    streamed = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    assert result.truncated and result.answer == streamed
    assert 0 < result.answer_tokens <= 7 and len(result.answer) <= 7
    assert result.answer == "隋炀帝于大业元"[:len(result.answer)]
    body = scripted.requests_for("agent")[0]
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


async def test_answer_within_the_cap_is_not_truncated(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", ANSWER)
    agent, _ = make_agent(scripted)
    result = await agent.run(AgentRequest(question="测试", generation={"max_tokens": 500}))
    await agent.aclose()
    assert not result.truncated and result.answer.startswith("隋炀帝于大业元年开通济渠")
    # counted in whole chunks: the chunk that carries the label's end and the answer's start counts (never less)
    assert len(result.answer) <= result.answer_tokens <= len(result.answer) + 2


async def test_stop_string_cuts_the_answer_but_not_the_tool_protocol(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", SEARCH, ANSWER)
    agent, _ = make_agent(scripted)
    events = [e async for e in agent.stream(AgentRequest(question="测试", generation={"stop": ["大业", "参见"]}))]
    await agent.aclose()
    result = events[-1].result
    assert result.answer == "隋炀帝于" and not result.truncated and result.finish_reason == "stop"
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == "隋炀帝于"
    assert result.steps[0].tool == "search_knowledge"  # "大业" in the Action Input did not stop the turn
    for body in scripted.requests_for("agent"):
        assert "大业" not in body["stop"]


async def test_sampling_and_instructions_reach_the_agent_model(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", ANSWER)
    agent, _ = make_agent(scripted)
    await agent.run(AgentRequest(question="测试", instructions="用一句话回答。", generation={
        "temperature": 0.0, "top_p": 0.5, "seed": 7, "extra": {"top_k": 3}}))
    await agent.aclose()
    body = scripted.requests_for("agent")[0]
    assert (body["temperature"], body["top_p"], body["seed"], body["top_k"]) == (0.0, 0.5, 7, 3)
    assert body["messages"][0]["content"].startswith("你是隋朝")  # the static system prompt is unchanged
    assert "用一句话回答。" in body["messages"][-1]["content"]
    assert "用一句话回答。" in scripted.requests_for("domain")[0]["messages"][0]["content"]
    draft = scripted.requests_for("domain")[0]  # the seed makes the run reproducible: the draft is seeded too,
    assert draft["seed"] == 7 and draft["temperature"] != 0.0 and "top_k" not in draft  # its sampling the tier's


async def test_an_unseeded_request_leaves_the_draft_unseeded(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", ANSWER)
    agent, _ = make_agent(scripted)
    await agent.run(AgentRequest(question="测试", generation={"temperature": 0.0}))
    await agent.aclose()
    assert "seed" not in scripted.requests_for("domain")[0]


async def test_max_steps_per_request(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", SEARCH, ANSWER)  # the second reply answers the forced final call
    agent, _ = make_agent(scripted, max_steps=5)
    result = await agent.run(AgentRequest(question="测试", max_steps=1))
    await agent.aclose()
    assert result.finish_reason == "max_steps" and len([s for s in result.steps if s.tool]) == 1


async def test_degraded_answer_is_cut_at_max_tokens_with_the_tiers_tokenizer(scripted):
    scripted.script("domain", "草稿答案很长很长")
    scripted.script("agent", Reply(status=400))
    agent, _ = make_agent(scripted)
    result = await agent.run(AgentRequest(question="测试", generation={"max_tokens": 4, "stop": ["很"]}))
    await agent.aclose()
    assert result.finish_reason == "degraded" and result.answer == "草稿答案" and result.answer_tokens == 4
    assert not result.truncated  # the stop string cut it first, to exactly the cap
    agent, _ = make_agent(scripted)
    scripted.script("domain", "草稿答案很长很长")
    scripted.script("agent", Reply(status=400))
    result = await agent.run(AgentRequest(question="测试", generation={"max_tokens": 3}))
    await agent.aclose()
    assert result.answer == "草稿答" and result.truncated and result.answer_tokens == 3


async def test_an_answer_that_cites_nothing_lists_its_evidence_visibly(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", SEARCH, "Final Answer: 是隋炀帝开的。")
    agent, _ = make_agent(scripted, max_steps=1)
    events = [e async for e in agent.stream("大运河是谁开凿的？")]
    await agent.aclose()
    result = events[-1].result
    assert result.answer.startswith("是隋炀帝开的。\n\n参考资料：[suishu:卷3:18]《隋书·帝纪卷三 炀帝上》")
    assert "suishu:卷3:18" in [c.id for c in result.citations]
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == result.answer
    # one token per character here; the answer's first chunk also carries the label's end (counted: never less)
    assert len(result.answer) <= result.answer_tokens <= len(result.answer) + 2


async def test_the_evidence_note_respects_max_tokens_and_stop(scripted):
    for generation, expected in (({"max_tokens": 12}, "是隋炀帝开的。\n\n参"), ({"stop": ["参考"]}, "是隋炀帝开的。")):
        scripted.script("domain", "草稿")
        scripted.script("agent", SEARCH, "Final Answer: 是隋炀帝开的。")
        agent, _ = make_agent(scripted, max_steps=1)
        result = await agent.run(AgentRequest(question="大运河是谁开凿的？", generation=generation))
        await agent.aclose()
        assert result.answer == expected, generation
        assert result.answer_tokens <= generation.get("max_tokens", 99)
        assert result.truncated == ("max_tokens" in generation)


async def test_an_answer_cut_by_the_tiers_own_cap_still_lists_its_evidence(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", SEARCH, "Final Answer: " + "是隋炀帝开的。" * 20)
    agent, _ = make_agent(scripted, max_steps=1, agent_llm=endpoint(scripted.base_url, "agent", max_tokens=100))
    result = await agent.run("大运河是谁开凿的？")
    await agent.aclose()
    assert result.truncated and "参考资料：[suishu:卷3:18]" in result.answer  # not the client's cap: the note fits


async def test_the_answer_is_counted_from_its_label_not_from_a_thought_that_says_the_same(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", "Thought: 隋炀帝于大业元年开通济渠，可以回答了。\n"
                             "Final Answer: 隋炀帝于大业元年开通济渠。")
    agent, _ = make_agent(scripted)
    result = await agent.run(AgentRequest(question="测试", generation={"max_tokens": 500}))
    await agent.aclose()
    # one token per character; counted from the answer (whole chunks), not from the Thought's identical words
    assert len(result.answer) <= result.answer_tokens <= len(result.answer) + 2


async def test_a_source_cut_off_with_the_observation_is_not_observed(scripted):
    scripted.script("domain", "草稿")
    scripted.script("agent", SEARCH, "Final Answer: 答案。")
    agent, _ = make_agent(scripted, max_steps=1, max_observation_chars=60)
    result = await agent.run("大运河是谁开凿的？")
    await agent.aclose()
    shown = result.steps[0].observation
    assert len(shown) <= 60 and result.citations
    assert all(f"[{c.id}]" in shown for c in result.citations)  # only what the model could see is citable


async def test_run_start_and_run_end_log_lines_describe_the_run(scripted, caplog):
    """The two JSON lines an operator reads per run (docs/observability.md): every field, with this run's values."""
    scripted.script("domain", "隋炀帝开凿了大运河。")
    scripted.script("agent", SEARCH, ANSWER)
    agent, hooks = make_agent(scripted)
    history = [{"role": "user", "content": "旧问题"}, {"role": "assistant", "content": "旧回答"}]
    with caplog.at_level("INFO", logger="react_tier.agent"):
        started = time.perf_counter()
        result = await agent.run(AgentRequest(question="大运河是谁开凿的？", history=history, max_steps=4))
        wall_ms = (time.perf_counter() - started) * 1000
    await agent.aclose()
    assert agent.agent_llm.client.is_closed() and agent.domain_llm.client.is_closed()  # aclose closes both
    assert ("llm", "domain", None) in hooks.calls and ("llm", "agent", None) in hooks.calls  # both tiers report
    assert 0 < result.steps[0].latency_s < wall_ms / 1000  # the step's time (the agent turn and the tool), in s
    lines = {r.getMessage(): r for r in caplog.records if r.getMessage() in ("run_start", "run_end")}
    start, end = lines["run_start"], lines["run_end"]
    assert (start.question_chars, start.history_turns, start.max_steps) == (len("大运河是谁开凿的？"), 2, 4)
    assert (end.finish_reason, end.steps, end.truncated) == ("stop", len(result.steps), False)
    assert (end.answer_tokens, end.citations) == (result.answer_tokens, 1) and end.answer_tokens > 0
    assert end.grounding == round(result.grounding.score, 3)
    assert wall_ms / 2 < end.latency_ms <= wall_ms + 1  # ms, from the start of the run to its end
    assert end.usage == {tier: u.model_dump() for tier, u in result.usage.items()} and end.usage["agent"]["calls"] == 2
    # the checker read the observed passage's text: the cited claim shares words with it
    assert result.grounding.flagged[0].support > 0, result.grounding  # 0.231: bigrams of the observed passage


@pytest.mark.parametrize(("total_s", "reserve_s", "loop_s"), [(10, 3, 7), (10, 8, 5), (60, 8, 52)])
def test_the_loop_stops_a_reserve_before_the_run_ends(scripted, monkeypatch, total_s, reserve_s, loop_s):
    """The time budget as arithmetic on a fixed clock: the loop ends ``final_answer_reserve_s`` (at most half the
    run) before the run's end, and ``budget()`` counts down to it (or to an earlier point it is given). (The
    wall-clock tests of the same budget are deselected under mutation testing; this one is not.)"""
    import react_tier.agent as agent_module

    class Clock:
        now = 1000.0

        @classmethod
        def monotonic(cls) -> float:
            return cls.now

    monkeypatch.setattr(agent_module, "time", Clock)
    agent, _ = make_agent(scripted, deadline_s=total_s, final_answer_reserve_s=reserve_s)
    run = agent_module._Run(agent, AgentRequest(question="测试"), lambda event: None)
    assert (run.started, run.deadline, run.loop_deadline) == (1000, 1000 + total_s, 1000 + loop_s)
    assert run.budget() == loop_s
    Clock.now = 1002.5
    assert run.budget() == loop_s - 2.5 and run.budget(until=1004) == 1.5


async def test_the_expert_tool_asks_the_domain_model_and_counts_the_call(scripted):
    scripted.script("domain", "草稿", "专家：大业元年。")
    ask = 'Thought: 问专家\nAction: ask_sui_expert\nAction Input: {"question": "通济渠何时开？"}'
    scripted.script("agent", ask, ANSWER)
    agent, _ = make_agent(scripted)
    result = await agent.run(AgentRequest(question="测试"))
    await agent.aclose()
    expert = scripted.requests_for("domain")[1]["messages"]
    assert expert[-1] == {"role": "user", "content": "通济渠何时开？"}
    assert result.steps[0].tool == "ask_sui_expert" and result.steps[0].observation.startswith("专家：大业元年。")
    assert result.usage["domain"].calls == 2  # the draft and the tool's call, in this run's usage


async def test_a_consumer_that_leaves_early_cancels_the_run_and_closes_cleanly(scripted):
    """Breaking out of ``stream()`` (what the ingress does when the client leaves) cancels the run's task and
    waits for it; closing the iteration raises nothing (the task's CancelledError stays inside)."""
    scripted.script("domain", "草稿")
    scripted.script("agent", SEARCH, ANSWER)
    agent, hooks = make_agent(scripted)
    events = agent.stream(AgentRequest(question="测试"))
    first = await anext(events)
    await events.aclose()
    await agent.aclose()
    assert isinstance(first, StepStarted | AnswerDelta | StepFinished)
    assert ("run_end", "stop") not in hooks.calls  # the run did not go on to its end


async def test_the_extractive_step_answers_from_the_evidence_without_a_model_call(scripted):
    """The quality ladder's last step (quality "extractive"): the lead of each passage the forced search showed,
    one cited line each; no LLM call. With no evidence it is a 503 naming why, not an empty answer."""
    agent, _ = make_agent(scripted)
    result = await agent.run(AgentRequest(question="通济渠是哪一年开的？", quality="extractive"))
    assert result.finish_reason == "degraded" and result.answer == (
        "[suishu:卷3:18] 徙天下富商大贾数万家于东京。辛亥，发河南诸郡男女百余万，开通济渠，"
        "自西苑引谷、洛水达于河，自板渚引河通于淮。\n"
        "[zztj:卷180:47] 自长安至江都，置离宫四十馀所。庚申，遣黄门侍郎王弘等往江南造龙舟及杂船数万艘。")
    assert [c.id for c in result.citations] == ["suishu:卷3:18", "zztj:卷180:47"]
    assert scripted.requests_for("agent") == [] and scripted.requests_for("domain") == []
    await agent.aclose()
    no_search, _ = make_agent(scripted, tools=["lookup_poem"])  # nothing searched: no evidence
    with pytest.raises(UpstreamError, match="no evidence to answer from") as refused:
        await no_search.run(AgentRequest(question="通济渠是哪一年开的？", quality="extractive"))
    await no_search.aclose()
    assert refused.value.status_code == 503
    assert str(refused.value) == "overloaded, and the knowledge base has no evidence to answer from"

"""The ReAct loop (react_tier/agent.py) pinned where mutation testing found it unpinned: the exact messages each
model receives (draft call, first agent turn, the remembered Thought/Action/Observation), observation truncation,
the tool-failure Observations, the degraded answer's format, hooks, and the forced first search."""

from __future__ import annotations

import json

import pytest

from react_tier.prompt import STOP_WORDS, question_message, system_prompt
from react_tier.request import AgentRequest
from react_tier.tools import DOMAIN_SYSTEM_PROMPT
from tests.scripted_openai import Reply, ScriptedOpenAI
from tests.unit.test_react_loop import make_agent

SEARCH = 'Thought: 查一下\nAction: search_knowledge\nAction Input: {"query": "开通济渠", "k": 1}'
FINAL = "Thought: 好\nFinal Answer: 见 [suishu:卷3:18]。"


@pytest.fixture(scope="module")
def server():
    with ScriptedOpenAI() as scripted:
        yield scripted


@pytest.fixture
def scripted(server):
    server.reset()
    return server


async def test_every_message_the_models_receive(scripted):
    scripted.script("domain", "草稿：炀帝。")
    scripted.script("agent", SEARCH, FINAL)
    agent, hooks = make_agent(scripted, max_observation_chars=60)
    history = [{"role": "user", "content": "前问"}, {"role": "assistant", "content": "前答"}]
    result = await agent.run(AgentRequest(question="谁开通济渠？", history=history, instructions="一句话。",
                                          request_id="rid-1"))
    await agent.aclose()

    (draft_call,) = scripted.requests_for("domain")
    assert draft_call["messages"] == [{"role": "system", "content": DOMAIN_SYSTEM_PROMPT + "\n\n一句话。"}, *history,
                                      {"role": "user", "content": "谁开通济渠？"}]
    first, second = scripted.requests_for("agent")
    opening = [{"role": "system", "content": system_prompt(list(agent.tools.values()))}, *history,
               {"role": "user", "content": question_message("谁开通济渠？", "草稿：炀帝。", "一句话。")}]
    assert first["messages"] == opening and first["stop"] == STOP_WORDS and first["stream"] is True
    observation = result.steps[0].observation
    assert len(observation) == 60 and observation.endswith("…") and observation.startswith("[suishu:卷3:18]")
    assert second["messages"] == [*opening, {
        "role": "assistant", "content": 'Thought: 查一下\nAction: search_knowledge\nAction Input: '
                                        + json.dumps({"query": "开通济渠", "k": 1}, ensure_ascii=False)},
        {"role": "user", "content": f"Observation: {observation}"}]
    assert result.request_id == "rid-1" and result.draft == "草稿：炀帝。"
    assert hooks.calls[0] == ("run_start", "rid-1") and hooks.calls[-1] == ("run_end", "stop")
    assert ("tool", "search_knowledge", True) in hooks.calls
    assert result.steps[0].tool_input == {"query": "开通济渠", "k": 1} and result.steps[0].thought == "查一下"


async def test_an_observation_at_the_limit_is_not_cut(scripted):
    scripted.script("agent", SEARCH, FINAL)
    agent, _ = make_agent(scripted, draft_first=False, max_observation_chars=10_000)
    result = await agent.run("谁开通济渠？")
    await agent.aclose()
    assert not result.steps[0].observation.endswith("…") and "开通济渠" in result.steps[0].observation


async def test_tool_failures_become_exact_observations(scripted):
    scripted.script("agent", 'Thought: t\nAction: lookup_poem\nAction Input: {"k": 1}',
                    'Thought: t\nAction: search_knowledge\nAction Input: {"query": "。。。"}', FINAL)
    agent, hooks = make_agent(scripted, draft_first=False)
    result = await agent.run("问")
    await agent.aclose()
    failed = result.steps[1]
    assert failed.error.startswith("tool: KnowledgeQueryError: ")
    assert failed.observation == f"工具 search_knowledge 出错：{failed.error.removeprefix('tool: ')}"
    assert ("tool", "search_knowledge", False) in hooks.calls
    refused = "lookup_poem 至少需要 text、title、author 之一"
    assert (result.steps[0].observation, result.steps[0].error) == (f"参数错误：{refused}", f"input: {refused}")


async def test_the_degraded_answer_is_the_draft_then_the_evidence(scripted):
    scripted.script("domain", "草稿。")
    scripted.script("agent", SEARCH, Reply(status=400), Reply(status=400))
    agent, _ = make_agent(scripted, max_observation_chars=10_000)
    result = await agent.run("谁开通济渠？")
    await agent.aclose()
    assert result.finish_reason == "degraded"
    assert result.answer == f"草稿。\n\n参考资料：\n{result.steps[0].observation}"
    assert [c.id for c in result.citations] == ["suishu:卷3:18"]


async def test_the_forced_first_search_is_step_zero(scripted):
    scripted.script("agent", FINAL)
    agent, _ = make_agent(scripted, draft_first=False, always_search_first=True)
    result = await agent.run("  谁开通济渠？ ")
    await agent.aclose()
    forced = result.steps[0]
    assert (forced.index, forced.forced, forced.tool, forced.thought) == (0, True, "search_knowledge", "由系统先检索知识库。")
    assert forced.tool_input == {"query": "谁开通济渠？"} and result.steps[1].index == 1

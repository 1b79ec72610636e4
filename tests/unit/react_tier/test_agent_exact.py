"""The ReAct loop (react_tier/agent.py) pinned where mutation testing found it unpinned: the exact messages each
model receives (draft call, first agent turn, the remembered Thought/Action/Observation), observation truncation,
the tool-failure Observations, the degraded answer's format, hooks, and the forced first search."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from react_tier import AgentHooks, AgentSettings, ReActAgent, UpstreamError
from react_tier.react_format import FORCE_FINAL, FORCE_REASONS, STOP_WORDS, question_message, system_prompt
from react_tier.request import AgentRequest
from react_tier.results import AnswerDelta
from react_tier.tools import DOMAIN_SYSTEM_PROMPT
from tests.scripted_openai import Reply
from tests.unit.react_tier.helpers import FakeKnowledgeBase, endpoint, make_agent

SEARCH = 'Thought: 查一下\nAction: search_knowledge\nAction Input: {"query": "开通济渠", "k": 1}'
FINAL = "Thought: 好\nFinal Answer: 见 [suishu:卷3:18]。"


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


async def test_the_degraded_answer_is_the_evidence_then_the_draft(scripted):
    scripted.script("domain", "草稿。")
    scripted.script("agent", SEARCH, Reply(status=400), Reply(status=400))
    agent, _ = make_agent(scripted, max_observation_chars=10_000)
    result = await agent.run("谁开通济渠？")
    await agent.aclose()
    assert result.finish_reason == "degraded"
    assert result.answer == f"参考资料：\n{result.steps[0].observation}\n\n领域模型初稿（未经核实）：\n草稿。"
    assert [c.id for c in result.citations] == ["suishu:卷3:18"]


async def test_the_forced_first_search_is_step_zero(scripted):
    scripted.script("agent", FINAL)
    agent, _ = make_agent(scripted, draft_first=False, always_search_first=True)
    result = await agent.run("  谁开通济渠？ ")
    await agent.aclose()
    forced = result.steps[0]
    assert (forced.index, forced.forced, forced.tool, forced.thought) == (
        0, True, "search_knowledge", "由系统先检索知识库。")
    assert forced.tool_input == {"query": "谁开通济渠？"} and result.steps[1].index == 1


class Timings(AgentHooks):
    """Records what the hooks receive, checking each latency is a duration of this run."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    async def on_run_start(self, question, request_id):
        self.seen.append(("start", question, request_id))

    def on_tool_end(self, tool, latency_s, ok):
        assert 0 <= latency_s < 30
        self.seen.append(("tool", tool, ok))

    async def on_run_end(self, result, latency_s):
        assert 0 <= latency_s < 30
        self.seen.append(("end", result.finish_reason))


def _agent(scripted, hooks=None, **overrides) -> ReActAgent:
    url = scripted.base_url
    settings = AgentSettings.load(domain_llm=endpoint(url, "domain"), agent_llm=endpoint(url, "agent"), **overrides)
    return ReActAgent.from_settings(settings, hooks=hooks or [], knowledge_base=FakeKnowledgeBase())


async def test_the_forced_final_call_continues_the_conversation(scripted):
    scripted.script("agent", SEARCH, "隋炀帝下令开凿。")  # the forced answer has no labels: all of it is the answer
    agent = _agent(scripted, draft_first=False, max_steps=1)
    result = await agent.run(AgentRequest(question="谁开通济渠？", generation={"seed": 5}))
    await agent.aclose()
    note = "\n\n参考资料：[suishu:卷3:18]《隋书·帝纪卷三 炀帝上》"  # it cited nothing: its evidence, visibly
    assert (result.finish_reason, result.answer) == ("max_steps", "隋炀帝下令开凿。" + note)
    assert result.answer_tokens == len(result.answer)  # the forced call's tokens + the note's (one per character)
    assert result.usage["agent"].calls == 2
    loop, forced = scripted.requests_for("agent")
    assert forced["messages"][:-1] == [*loop["messages"], forced["messages"][-3], forced["messages"][-2]]
    assert forced["messages"][-2]["content"].startswith("Observation: [suishu:卷3:18]")
    assert forced["messages"][-1] == {"role": "user", "content": FORCE_FINAL.format(reason=FORCE_REASONS["max_steps"])}
    assert forced["stop"] == STOP_WORDS and forced["seed"] == 5 and forced["stream"] is True


async def test_a_forced_final_with_labels_but_no_answer_falls_back(scripted):
    scripted.script("domain", "草稿。")
    scripted.script("agent", SEARCH, "Thought: 还要查\nAction: search_knowledge")
    agent = _agent(scripted, max_steps=1)
    result = await agent.run("谁开通济渠？")
    await agent.aclose()
    assert result.finish_reason == "degraded" and result.answer.startswith("参考资料：\n[suishu:卷3:18]")
    assert result.answer.endswith("\n\n领域模型初稿（未经核实）：\n草稿。")


async def test_a_failed_forced_final_is_logged_with_the_request_id(scripted, caplog):
    scripted.script("domain", "草稿。")
    scripted.script("agent", SEARCH, Reply(status=400))
    agent = _agent(scripted, max_steps=1)
    with caplog.at_level(logging.WARNING, logger="react_tier.agent"):
        result = await agent.run(AgentRequest(question="谁开通济渠？", request_id="rid-9"))
    await agent.aclose()
    assert result.finish_reason == "degraded"
    (record,) = [r for r in caplog.records if "forced final" in r.getMessage()]
    assert record.getMessage().startswith("forced final answer failed (rid-9): Error code: 400")


async def test_usage_has_both_tiers_and_tools_count_on_the_domain(scripted):
    scripted.script("domain", "专家：炀帝。")
    scripted.script("agent", 'Thought: 问专家\nAction: ask_sui_expert\nAction Input: {"question": "谁？"}', FINAL)
    timings = Timings()
    agent = _agent(scripted, hooks=[timings], draft_first=False)
    result = await agent.run(AgentRequest(question="谁开通济渠？", request_id="r"))
    await agent.aclose()
    assert set(result.usage) == {"domain", "agent"} and result.usage["domain"].calls == 1
    assert result.steps[0].observation == "专家：炀帝。" and 0 <= result.steps[0].latency_s < 30
    assert timings.seen == [("start", "谁开通济渠？", "r"), ("tool", "ask_sui_expert", True), ("end", "stop")]
    (expert,) = scripted.requests_for("domain")
    assert expert["messages"] == [{"role": "system", "content": DOMAIN_SYSTEM_PROMPT},
                                  {"role": "user", "content": "谁？"}]


async def test_search_k_and_the_draft_without_instructions(scripted):
    scripted.script("domain", "草稿。")
    scripted.script("agent", 'Thought: 查\nAction: search_knowledge\nAction Input: 隋', FINAL)
    agent = _agent(scripted, search_k=1)
    result = await agent.run("谁开通济渠？")
    await agent.aclose()
    assert result.steps[0].observation.count("\n[") == 0 and result.steps[0].tool_input == {"query": "隋"}
    assert scripted.requests_for("domain")[0]["messages"][0] == {"role": "system", "content": DOMAIN_SYSTEM_PROMPT}


async def test_a_broken_action_input_is_shown_as_written(scripted):
    scripted.script("agent", 'Thought: 查\nAction: search_knowledge\nAction Input: {"query": "大业', FINAL)
    agent = _agent(scripted, draft_first=False)
    result = await agent.run("谁开通济渠？")
    await agent.aclose()
    assert result.steps[0].tool_input == '{"query": "大业' and result.steps[0].error.startswith("input: ")


async def test_the_degraded_answer_is_streamed_too(scripted):
    scripted.script("domain", "草稿。")
    scripted.script("agent", Reply(status=400))
    agent = _agent(scripted)
    events = [event async for event in agent.stream("谁？")]
    await agent.aclose()
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == events[-1].result.answer == "草稿。"


async def test_a_failed_agent_call_is_a_step_with_its_error_and_its_own_latency(scripted):
    scripted.script("domain", "草稿。")
    scripted.script("agent", Reply(status=400))
    agent = _agent(scripted)
    started = time.monotonic()
    result = await agent.run("谁？")
    wall = time.monotonic() - started
    await agent.aclose()
    (step,) = result.steps
    assert step.error.startswith("agent LLM: ") and result.finish_reason == "degraded"
    assert 0 < step.latency_s <= wall  # the call's time, measured from the step's start


async def test_nothing_to_answer_with_names_the_agent_tier(scripted):
    scripted.script("agent", Reply(status=400))
    agent = _agent(scripted, draft_first=False)
    with pytest.raises(UpstreamError) as info:
        await agent.run("谁？")
    await agent.aclose()
    assert info.value.status_code == 502 and str(info.value).startswith("agent LLM gave a bad response: ")


async def test_the_knowledge_base_is_loaded_once_on_first_use(monkeypatch):
    from react_tier.knowledge import KnowledgeBase

    loads = []

    def load(settings):
        loads.append(settings)
        return FakeKnowledgeBase()

    monkeypatch.setattr(KnowledgeBase, "load", staticmethod(load))
    agent = ReActAgent.from_settings(AgentSettings.load())
    first, second = await asyncio.gather(agent.load_knowledge(), agent.load_knowledge())
    assert first is second and isinstance(first, FakeKnowledgeBase) and await agent.load_knowledge() is first
    assert loads == [agent.settings.knowledge]
    await agent.aclose()


async def test_the_degraded_answer_lists_each_piece_of_evidence_on_its_own_line(scripted):
    scripted.script("domain", "草稿。")
    scripted.script("agent", SEARCH, 'Thought: 再查\nAction: search_knowledge\nAction Input: {"query": "龙舟", "k": 1}',
                    Reply(status=400))
    agent = _agent(scripted, max_observation_chars=10_000)
    result = await agent.run("谁开通济渠？")
    await agent.aclose()
    first, second = (step.observation for step in result.steps[:2])
    assert result.answer == f"参考资料：\n{first}\n{second}\n\n领域模型初稿（未经核实）：\n草稿。"


async def test_a_forced_answer_cut_by_the_tiers_own_cap_is_truncated(scripted):
    scripted.script("agent", SEARCH, Reply("隋炀帝下令", finish_reason="length"))
    agent = _agent(scripted, draft_first=False, max_steps=1)
    result = await agent.run("谁开通济渠？")
    await agent.aclose()
    # the tier's cap (not the client's) cut it: still truncated, and its evidence is listed after it
    assert (result.answer, result.truncated, result.finish_reason) == (
        "隋炀帝下令\n\n参考资料：[suishu:卷3:18]《隋书·帝纪卷三 炀帝上》", True, "max_steps")


@pytest.mark.parametrize(("room", "note_kept", "truncated"), [
    (None, "all", False), (0, "", False), (1, "\n", True), (3, "\n\n参", True), ("exact", "all", False)])
async def test_the_evidence_note_gets_the_room_the_clients_max_tokens_leaves(scripted, room, note_kept, truncated):
    answer, note = "隋炀帝下令开凿。", "\n\n参考资料：[suishu:卷3:18]《隋书·帝纪卷三 炀帝上》"
    scripted.script("agent", SEARCH, answer)
    agent = _agent(scripted, draft_first=False, max_steps=1)
    cap = None if room is None else len(answer) + (len(note) if room == "exact" else room)
    result = await agent.run(AgentRequest(question="谁开通济渠？", generation={"max_tokens": cap}))
    await agent.aclose()
    kept = note if note_kept == "all" else note_kept
    assert (result.answer, result.truncated) == (answer + kept, truncated)
    assert result.answer_tokens == len(answer + kept)


@pytest.mark.parametrize(("text", "answer", "start"), [
    # after the label
    ("Thought: 隋炀帝开凿了通济渠吗\nFinal Answer: 隋炀帝开凿了通济渠。", "隋炀帝开凿了通济渠。", 34),
    ("Final Answer: 甲\nFinal Answer: 隋炀帝开凿了通济渠。", "隋炀帝开凿了通济渠。", 30),  # the last label
    ("Final Answer: 隋炀帝开凿了通济渠。", "隋炀帝开凿了通济渠。", 14),
    ("隋炀帝开凿了通济渠。", "隋炀帝开凿了通济渠。", 0),  # no label: its first occurrence
    ("前言。隋炀帝开凿了通济渠。又：隋炀帝开凿了通济渠。", "隋炀帝开凿了通济渠。", 3),
    ("Final Answer: 别的话", "隋炀帝开凿了通济渠。", 0),  # not after the label nor anywhere: the start
    ("xx隋炀帝开凿了通济渠Final Answer: 别的", "隋炀帝开凿了通济渠。", 2),  # before the label only: its occurrence
    ("Final Answer: 隋炀帝开凿了通济河", "隋炀帝开凿了通济渠", 14),  # its first 8 characters locate it
    ("final answer: 隋炀帝开凿了通济渠", "隋炀帝开凿了通济渠", 14),  # the label is case-sensitive: by occurrence
    ("Final Answer: 隋炀帝开凿了通济渠\nFinal Answer: 隋炀帝开凿了通济渠。", "隋炀帝开凿了通济渠。", 38),
    ("Final Answer: 隋炀帝开凿了通济渠。隋炀帝开凿了通济渠。", "隋炀帝开凿了通济渠。", 14),  # the first after it
    ("隋炀帝开凿了通济河Final Answer: 隋炀帝开凿了通济河", "隋炀帝开凿了通济渠", 23),
    ("前言隋炀帝开凿了通济河", "隋炀帝开凿了通济渠", 2),
    ("甲乙甲", "甲", 0),
    ("任何文字", "", 0)])
def test_where_the_answer_starts_in_the_turns_text(text, answer, start):
    from react_tier.react_format import answer_start

    assert answer_start(text, answer) == start
    assert text[start:].startswith(answer[:8]) or start == 0


def test_tool_arguments_are_shown_as_json_unless_already_text():
    from react_tier.react_format import render_action

    assert render_action("t", "a", "隋 文帝").endswith("\nAction Input: 隋 文帝")
    assert render_action("t", "a", {"query": "隋文帝", "k": 3}).endswith(
        '\nAction Input: {"query": "隋文帝", "k": 3}')  # readable Chinese


async def test_an_observation_of_exactly_the_limit_is_kept_whole(scripted):
    async def observation(limit: int) -> str:
        scripted.script("agent", SEARCH, FINAL)
        agent = _agent(scripted, draft_first=False, max_observation_chars=limit)
        result = await agent.run("谁开通济渠？")
        await agent.aclose()
        assert all(0 < step.latency_s < 30 for step in result.steps)  # each step's duration, tool steps too
        return result.steps[0].observation

    full = await observation(10_000)
    assert not full.endswith("…")
    assert await observation(len(full)) == full
    assert await observation(len(full) - 1) == full[:len(full) - 2] + "…"


def test_the_lead_of_a_passage_for_an_extractive_answer():
    """agent._lead (the quality ladder's extractive answer): the first two sentences, whitespace removed, within
    the limit; one sentence when only one ends inside it; half the limit when none does."""
    from react_tier.agent import _lead

    assert _lead("开皇元年，\n 隋文帝即位。改元开皇！大赦天下？余下不取。") == "开皇元年，隋文帝即位。改元开皇！"
    assert _lead("隋文帝即位。改元开皇，大赦天下", limit=8) == "隋文帝即位。"
    assert _lead("甲乙丙丁戊己庚辛壬癸。", limit=8) == "甲乙丙丁"
    assert _lead("甲乙 丙丁\t戊己", limit=9) == "甲乙丙丁"
    assert _lead("甲。乙。丙。") == _lead("甲。乙。") == "甲。乙。"
    assert _lead("甲" * 119 + "乙。丙。") == "甲" * 60  # a sentence end past the 120th character is not seen


async def test_an_empty_or_long_unparsable_turn_is_remembered_and_logged_exactly(scripted):
    """An empty turn goes back to the model as "（空）" (an empty assistant message would read as no turn at all);
    a step's parse error quotes the first 120 characters of the output."""
    from react_tier.react_format import ReActParseError, parse_turn

    long_output = "甲" * 200
    scripted.script("agent", Reply("", chunk_chars=1), long_output, FINAL)
    agent, _ = make_agent(scripted, draft_first=False, max_parse_retries=3)
    result = await agent.run("隋朝是谁建立的？")
    await agent.aclose()
    assert result.finish_reason == "stop"
    second = scripted.requests_for("agent")[1]
    assert second["messages"][-2] == {"role": "assistant", "content": "（空）"}
    with pytest.raises(ReActParseError) as err:
        parse_turn(long_output, ["search_knowledge"])
    assert result.steps[1].error == f"parse: {err.value} output: {'甲' * 120!r}"

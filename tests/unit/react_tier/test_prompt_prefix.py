"""Prefix-cache layout of the ReAct prompt: every run starts with the same static system message (instructions +
tool descriptions), per-run parts come after it, and each agent call's messages extend the previous call's, so
vLLM's prefix cache can reuse the static prefix across runs and the whole earlier prompt within a run."""

from __future__ import annotations

from react_tier.react_format import question_message, system_prompt
from react_tier.settings import AgentSettings
from react_tier.tools import build_tools
from tests.unit.react_tier.helpers import ANSWER, SEARCH, make_agent


async def test_static_prefix_is_shared_across_runs_and_calls_extend_each_other(server):
    server.reset()
    questions = ["大业元年开了哪条运河？", "隋朝是谁建立的？"]
    for _ in questions:
        server.script("domain", "隋炀帝开凿了大运河。")
        server.script("agent", SEARCH, ANSWER)
    for q in questions:
        agent, _ = make_agent(server)
        assert (await agent.run(q)).finish_reason == "stop"
        await agent.aclose()
    calls = server.requests_for("agent")
    assert len(calls) == 4
    systems = {c["messages"][0]["content"] for c in calls}
    assert len(systems) == 1  # one byte-identical static prefix for every call of every run
    static = systems.pop()
    assert all(q not in static for q in questions) and "search_knowledge" in static
    for first, second in (calls[0:2], calls[2:4]):  # within a run: the later prompt extends the earlier one
        assert second["messages"][: len(first["messages"])] == first["messages"]


def test_system_prompt_has_no_per_run_part():
    tools = list(build_tools(AgentSettings()).values())
    assert system_prompt(tools) == system_prompt(list(build_tools(AgentSettings()).values()))
    assert question_message("问题", "初稿").startswith("Question: 问题")

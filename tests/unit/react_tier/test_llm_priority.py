"""LLMClient: program-aware vLLM priorities (later calls of a run first), pass-through extra_body, pool size."""

from __future__ import annotations

import time

from react_tier.llm import POOL_SIZE, LLMClient, deadline_priority, program_priority
from react_tier.settings import LLMEndpointSettings
from tests.unit.react_tier.helpers import ANSWER, SEARCH, make_agent


def test_program_priority_counts_assistant_turns():
    assert program_priority([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]) == 0
    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "o"},
             {"role": "assistant", "content": "b"}]
    assert program_priority(turns) == -2


async def test_later_calls_of_a_run_are_sent_with_higher_priority(server):
    server.reset()
    server.script("domain", "隋炀帝开凿了大运河。")
    server.script("agent", SEARCH, SEARCH, ANSWER)
    agent, _ = make_agent(server, domain_llm={"base_url": server.base_url, "model": "domain", "timeout_s": 5,
                                              "extra_body": {"priority": "program", "ignore_eos": True}},
                          agent_llm={"base_url": server.base_url, "model": "agent", "timeout_s": 5,
                                     "extra_body": {"priority": "program"}})
    result = await agent.run("大业元年开了哪条运河？")
    await agent.aclose()
    assert result.finish_reason == "stop"
    assert [r["priority"] for r in server.requests_for("agent")] == [0, -1, -2]  # lower = earlier in vLLM
    (draft,) = server.requests_for("domain")
    assert draft["priority"] == 0 and draft["ignore_eos"] is True  # other extra_body fields pass through


def test_the_run_ordered_priority_is_the_epoch_millisecond_where_the_budget_ends():
    # no "deadline" in this name: `make mutation` deselects those (wall-clock tests), and this one is pure
    assert deadline_priority(2.5, 60, now=1000.0) == 1_002_500
    assert deadline_priority(None, 60, now=1000.0) == 1_060_000  # no budget: the call's own timeout


async def test_deadline_priority_sends_the_runs_deadline_with_every_call_of_both_tiers(server):
    server.reset()
    server.script("domain", "隋炀帝开凿了大运河。")
    server.script("agent", SEARCH, SEARCH, ANSWER)
    extra = {"priority": "deadline"}
    agent, _ = make_agent(server, domain_llm={"base_url": server.base_url, "model": "domain", "timeout_s": 5,
                                              "extra_body": extra},
                          agent_llm={"base_url": server.base_url, "model": "agent", "timeout_s": 5,
                                     "extra_body": extra})
    started_ms = time.time() * 1000
    result = await agent.run("大业元年开了哪条运河？")
    await agent.aclose()
    assert result.finish_reason == "stop"
    sent = [r["priority"] for r in server.requests_for("domain") + server.requests_for("agent")]
    assert len(sent) == 4 and all(isinstance(p, int) for p in sent)
    # every call of the run carries the same key: the run's loop deadline (its budget ends there), not "now"
    assert max(sent) - min(sent) < 250
    deadline_s = agent.settings.deadline_s - min(agent.settings.final_answer_reserve_s, agent.settings.deadline_s / 2)
    assert abs(sent[0] - (started_ms + deadline_s * 1000)) < 1000


async def test_integer_priority_passes_through_and_none_by_default(server):
    server.reset()
    server.script("agent", ANSWER, ANSWER)
    for extra, expected in (({"priority": 5}, 5), ({}, None)):
        client = LLMClient("agent", LLMEndpointSettings(base_url=server.base_url, model="agent", extra_body=extra))
        await client.complete([{"role": "user", "content": "q"}])
        await client.aclose()
        assert server.requests_for("agent")[-1].get("priority") == expected


def test_connection_pool_keeps_pool_size_connections_alive():
    client = LLMClient("agent", LLMEndpointSettings(base_url="http://127.0.0.1:9/v1", model="m"))
    pool = client.client._client._transport._pool
    assert pool._max_keepalive_connections == POOL_SIZE == pool._max_connections

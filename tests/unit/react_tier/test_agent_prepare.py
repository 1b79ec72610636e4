"""The run's preparation and the agent's edges, pinned where mutation testing found them unpinned: a list of hooks
becomes one HookSet, the forced first search is step 0 on the stream and in its span (``sui.forced``), the draft
call carries the run's remaining budget and a failed draft is logged with the request id and the error, and a
consumer that stops reading leaves no run task behind."""

from __future__ import annotations

import asyncio
import logging
import time

from react_tier import AgentSettings, ReActAgent
from react_tier.hooks import HookSet
from react_tier.llm import LLMClient
from react_tier.request import AgentRequest
from react_tier.results import StepFinished, StepStarted
from tests.scripted_openai import Reply
from tests.unit.react_tier.helpers import ANSWER, FakeKnowledgeBase, Recorder, Spans, endpoint, make_agent


async def test_a_list_of_hooks_becomes_one_hook_set_that_calls_each():
    settings = AgentSettings.load(domain_llm=endpoint("http://127.0.0.1:9/v1", "domain"),
                                  agent_llm=endpoint("http://127.0.0.1:9/v1", "agent"))
    recorder = Recorder()
    agent = ReActAgent(settings, agent_llm=LLMClient("agent", settings.agent_llm),
                       domain_llm=LLMClient("domain", settings.domain_llm), tools={}, hooks=[recorder])
    assert isinstance(agent.hooks, HookSet)
    await agent.hooks.on_parse_error("e", "raw")
    assert recorder.calls == [("parse_error", "raw", "e")]
    await agent.aclose()


async def test_the_forced_search_is_step_zero_on_the_stream_and_in_its_span(scripted):
    scripted.script("agent", ANSWER)
    settings = AgentSettings.load(domain_llm=endpoint(scripted.base_url, "domain"),
                                  agent_llm=endpoint(scripted.base_url, "agent"), draft_first=False,
                                  always_search_first=True)
    spans = Spans()
    agent = ReActAgent.from_settings(settings, hooks=[spans], knowledge_base=FakeKnowledgeBase())
    events = [e async for e in agent.stream("大运河是谁开凿的？")]
    await agent.aclose()
    started = [e for e in events if isinstance(e, StepStarted)]
    assert [e.index for e in started] == [0, 1] and events[0] == started[0]
    first_finished = next(e for e in events if isinstance(e, StepFinished))
    assert first_finished.step.index == 0 and first_finished.step.forced
    steps = [attrs for name, attrs in spans.opened if name == "react.step"]
    assert steps == [{"sui.step": 0, "sui.forced": True}, {"sui.step": 1}]


async def test_the_draft_call_carries_the_runs_remaining_budget(scripted):
    # no "deadline" in this name (`make mutation` deselects those); the slack is seconds, the difference 50 s
    scripted.script("domain", "草稿")
    scripted.script("agent", ANSWER)
    agent, _ = make_agent(scripted, deadline_s=60,
                          domain_llm=endpoint(scripted.base_url, "domain", timeout_s=10,
                                              extra_body={"priority": "deadline"}))
    before = time.time()
    await agent.run("大运河是谁开凿的？")
    await agent.aclose()
    (draft,) = scripted.requests_for("domain")
    assert (before + 50) * 1000 < draft["priority"] <= (time.time() + 60) * 1000  # the run's 60 s, not the call's 10


async def test_a_failed_draft_is_logged_with_the_request_id_and_the_error(scripted, caplog):
    scripted.script("domain", Reply(status=400))
    scripted.script("agent", ANSWER)
    agent, _ = make_agent(scripted)
    caplog.set_level(logging.WARNING, logger="react_tier.agent")
    result = await agent.run(AgentRequest(question="大运河是谁开凿的？", request_id="rid-draft"))
    await agent.aclose()
    assert result.draft is None
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("draft failed")]
    assert line.startswith("draft failed (rid-draft): ") and "400" in line


async def test_a_consumer_that_stops_reading_leaves_no_run_task(scripted):
    scripted.script("agent", Reply(ANSWER, delay_s=5))
    agent, _ = make_agent(scripted, draft_first=False, always_search_first=True)
    events = agent.stream("大运河是谁开凿的？")
    first = await anext(events)
    assert isinstance(first, StepStarted)
    await events.aclose()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert all(t.done() for t in others if "execute" in repr(t.get_coro()))
    await agent.aclose()

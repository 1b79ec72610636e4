"""The prompt budget: the longest request the input limits allow must fit each model's context window, checked
at start-up (:func:`check_prompt_budget`: `suiqa up` before anything starts, the Serve app before it deploys,
every agent built from settings), with a one-line error that says how many characters the limits may add up
to.

Why (issue #25): the limits (question 2,000 characters, history 16,000, instructions 4,000) and each model's
context (its serving profile's max_model_len) were set apart. On the tiny CPU profile (agent context 4,096
tokens, its system prompt alone ~1,260) a 2,000-character question overflowed it: vLLM refused the first agent
call, and every such request ended ``degraded`` with 0 agent calls.

Counted, for the agent model's first call (it carries everything a request brings; later steps append tool
results, bounded by max_steps x max_observation_chars, and a step that overflows ends the run ``degraded``
with the evidence so far): the system prompt (the tools' descriptions), the kept history, the question message
(question, instructions and a draft of ``domain_llm.max_tokens``), with ``always_search_first`` the forced
search step (the question again, in its Action Input, and an Observation of ``max_observation_chars``), and
the call's own ``agent_llm.max_tokens``. For the domain model's draft call: its system prompt, the
instructions, history and question, and ``domain_llm.max_tokens``. Characters count at the endpoint's
``tokens_per_char`` (1.0 by default: the tiny BPE measured 0.86-0.97 on Sui questions and the corpus), plus
MESSAGE_OVERHEAD_TOKENS per chat message (the template's role markers). Text far from the corpus (random rare
characters: 1.9 tokens each on the tiny BPE) can still overflow; that call fails and the run ends
``degraded``, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from react_tier.react_format import DRAFT_BLOCK, question_message, system_prompt
from react_tier.settings import AgentSettings, LLMEndpointSettings
from react_tier.tools import DOMAIN_SYSTEM_PROMPT, build_tools
from suiqa.errors import SuiqaError

MESSAGE_OVERHEAD_TOKENS = 8  # <|im_start|>role\n ... <|im_end|>\n and the like, per message
# the forced step's own text around the question (agent._Run._prepare / _act / _remember):
# 'Thought: 由系统先检索知识库。\nAction: search_knowledge\nAction Input: {"query": ""}' + 'Observation: '
FORCED_STEP_CHARS = 85  # 72 + 13; tests/unit/react_tier/test_budget.py measures the real messages


class PromptBudgetError(SuiqaError):
    """The limits allow a request longer than a model's context (one line)."""


@dataclass(frozen=True)
class Budget:
    """One model call's longest prompt: ``fixed_tokens`` whatever the request, plus ``tokens_per_char`` per
    character of ``question_weight`` x question + history + instructions."""

    tier: str
    context_tokens: int
    fixed_tokens: int
    question_weight: int
    tokens_per_char: float

    def input_chars(self, settings: AgentSettings) -> int:
        limits = settings.limits
        return (self.question_weight * limits.max_question_chars + limits.max_history_chars
                + limits.max_instructions_chars)

    def tokens(self, settings: AgentSettings) -> int:
        return self.fixed_tokens + math.ceil(self.input_chars(settings) * self.tokens_per_char)

    def spare_chars(self) -> int:
        """How many characters of inputs (question counted ``question_weight`` times) fit."""
        return math.floor((self.context_tokens - self.fixed_tokens) / self.tokens_per_char)


def _tokens(chars: int, endpoint: LLMEndpointSettings) -> int:
    return math.ceil(chars * endpoint.tokens_per_char)


def agent_budget(settings: AgentSettings) -> Budget | None:
    """The agent model's first call; None when its context is not known."""
    endpoint = settings.agent_llm
    if endpoint.context_tokens is None:
        return None
    tools = build_tools(settings)
    forced = settings.always_search_first and "search_knowledge" in tools
    draft = settings.domain_llm.max_tokens if settings.draft_first else 0
    chars = (len(system_prompt(list(tools.values()))) + len(question_message("", None, "-")) - 1
             + (len(DRAFT_BLOCK.format(draft="")) if draft else 0)
             + (FORCED_STEP_CHARS + settings.max_observation_chars if forced else 0))
    messages = 2 + settings.limits.max_history_messages + (2 if forced else 0)
    fixed = (_tokens(chars, endpoint) + draft + endpoint.max_tokens + MESSAGE_OVERHEAD_TOKENS * messages)
    return Budget("agent", endpoint.context_tokens, fixed, 2 if forced else 1, endpoint.tokens_per_char)


def draft_budget(settings: AgentSettings) -> Budget | None:
    """The domain model's draft call; None without a draft or when its context is not known."""
    endpoint = settings.domain_llm
    if not settings.draft_first or endpoint.context_tokens is None:
        return None
    chars = len(DOMAIN_SYSTEM_PROMPT) + len("\n\n")
    messages = 2 + settings.limits.max_history_messages
    fixed = _tokens(chars, endpoint) + endpoint.max_tokens + MESSAGE_OVERHEAD_TOKENS * messages
    return Budget("domain", endpoint.context_tokens, fixed, 1, endpoint.tokens_per_char)


def check_prompt_budget(settings: AgentSettings) -> None:
    """PromptBudgetError (one line) when the longest request the limits allow does not fit a model's
    context."""
    limits = settings.limits
    for budget in (agent_budget(settings), draft_budget(settings)):
        if budget is None or budget.tokens(settings) <= budget.context_tokens:
            continue
        question = ("2 x question (always_search_first repeats it)" if budget.question_weight == 2
                    else "question")
        per_char = f"{budget.tokens_per_char:g} {'token' if budget.tokens_per_char == 1 else 'tokens'}"
        raise PromptBudgetError(
            f"the longest request the limits allow needs ~{budget.tokens(settings)} tokens of the "
            f"{budget.tier} model's {budget.context_tokens}-token context "
            f"({budget.tier}_llm.context_tokens): "
            f"{question} + history + instructions may add up to {max(0, budget.spare_chars())} characters at "
            f"{per_char} a character, the limits allow {budget.input_chars(settings)} "
            f"(limits.max_question_chars {limits.max_question_chars}, max_history_chars "
            f"{limits.max_history_chars}, max_instructions_chars {limits.max_instructions_chars}); lower "
            "them, or the per-call max_tokens")

"""The typed seams of react_tier (issue #26): the real classes and the unit tests' doubles satisfy the same
Protocols — the knowledge base the tools read, the domain client they call, the tokenizer the answer shaper cuts
with, the hooks the loop and the LLM clients report to."""

from __future__ import annotations

import inspect

from react_tier.agent import ReActAgent, _CountedClient
from react_tier.hooks import AgentHooks, HookSet
from react_tier.knowledge.base import KnowledgeBase
from react_tier.llm import LLMClient
from react_tier.seams import DomainClient, Knowledge, Tokenizer
from tests.unit.react_tier.helpers import FakeKnowledgeBase


def test_the_real_classes_and_the_doubles_fit_the_protocols():
    assert issubclass(KnowledgeBase, Knowledge) and isinstance(FakeKnowledgeBase(), Knowledge)
    assert issubclass(LLMClient, DomainClient) and issubclass(_CountedClient, DomainClient)
    assert issubclass(LLMClient, Tokenizer)
    assert not isinstance(object(), Knowledge) and not issubclass(FakeKnowledgeBase, DomainClient)


def test_the_hook_set_offers_every_hook_with_its_signature():
    hooks = [name for name, _ in inspect.getmembers(AgentHooks, inspect.iscoroutinefunction)]
    assert hooks == ["on_llm_call", "on_parse_error", "on_run_end", "on_run_start", "on_step", "on_tool_end"]
    for name in hooks:
        assert inspect.signature(getattr(HookSet, name)) == inspect.signature(getattr(AgentHooks, name)), name
    assert "knowledge_base" in inspect.signature(ReActAgent).parameters


async def test_the_hook_set_fans_out_and_swallows_a_failing_hook():
    seen = []

    class Seen(AgentHooks):
        async def on_tool_end(self, tool, latency_s, ok):
            seen.append((tool, ok))

        def on_step(self, step):  # a sync hook works too
            seen.append(step)

    class Broken(AgentHooks):
        async def on_tool_end(self, tool, latency_s, ok):
            raise RuntimeError("broken hook")

    hooks = HookSet([Broken(), Seen()])
    await hooks.on_tool_end("search_knowledge", 0.1, True)
    await hooks.on_step("s")
    assert seen == [("search_knowledge", True), "s"]

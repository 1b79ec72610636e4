"""The typed seams of react_tier: what the loop and its tools need from the parts a deployment or a test may
swap (the knowledge base, the domain tier's client, a tokenizer), as Protocols that the real classes and the unit
tests' doubles both satisfy (tests/unit/react_tier/test_seams.py checks it). A module of its own, without behaviour:
mutation testing rewrites the modules it mutates (their classes get extra attributes), which a runtime Protocol
check would then read as members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from react_tier.knowledge.models import Passage, Poem
    from react_tier.llm import Completion


@runtime_checkable
class Knowledge(Protocol):
    """What tools read from the knowledge base: react_tier.knowledge.KnowledgeBase, and the unit tests'
    FakeKnowledgeBase (tests/unit/react_tier/knowledge/test_base_contract.py holds the two to the same answers and
    refusals). A base may also offer ``poem_group(title)`` (组诗); the poem tool asks for it only where it exists."""

    def search(self, query: str, k: int = 5) -> list[Passage]: ...

    def lookup_poem(self, text: str | None = None, *, title: str | None = None, author: str | None = None,
                    k: int = 5) -> list[Poem]: ...

    def get(self, passage_id: str) -> Passage | None: ...


@runtime_checkable
class DomainClient(Protocol):
    """The domain tier as tools call it: LLMClient.complete, counted in the run's usage (agent._CountedClient)."""

    async def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> Completion: ...


@runtime_checkable
class Tokenizer(Protocol):
    """What cuts a whole text at a token cap: a tier's client (LLMClient, with vLLM's /tokenize)."""

    async def truncate_to_tokens(self, text: str, cap: int) -> tuple[str, int]: ...

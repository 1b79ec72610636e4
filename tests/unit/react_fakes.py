"""Test doubles for the agent's unit tests: a tiny in-memory knowledge base with the KnowledgeBase protocol,
and tools for registry/timeout tests."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from react_tier.knowledge.models import Passage, Poem
from react_tier.tools import Tool, ToolResult

# the knowledge base's own record types, so tools format fakes exactly as they format real hits
FakePassage, FakePoem = Passage, Poem


PASSAGES = [
    FakePassage("suishu:3:1", "book_of_sui", "隋书·炀帝纪", "大业元年，发河南诸郡男女百余万，开通济渠。"),
    FakePassage("tongjian:180:2", "zizhi_tongjian", "资治通鉴·隋纪", "炀帝幸江都，龙舟相接二百余里。"),
    FakePassage("bio:yang_su", "biographies", "杨素传", "杨素，字处道，弘农华阴人。"),
]
POEMS = [FakePoem("poem:1", "春江花月夜", "杨广", "暮江平不动，春花满正开。", dynasty="隋")]


class FakeKnowledgeBase:
    def __init__(self) -> None:
        self.queries: list[tuple[str, int]] = []

    def search(self, query: str, k: int = 5) -> list[FakePassage]:
        self.queries.append((query, k))
        if not query.strip():
            raise ValueError("empty query")
        hits = [p for p in PASSAGES if set(query) & set(p.text + p.title)]
        return hits[:k]

    def lookup_poem(self, text=None, *, title=None, author=None, k=5) -> list[FakePoem]:
        return [p for p in POEMS if (author and author in p.author) or (title and title in p.title)
                or (text and text[:2] in p.content)][:k]

    def get(self, passage_id: str) -> FakePassage | None:
        return next((p for p in PASSAGES if p.id == passage_id), None)


class SlowTool(Tool):
    """Sleeps longer than any test's tool timeout."""

    name = "slow_tool"
    description = "一个很慢的工具。"
    parameters: ClassVar[dict[str, Any]] = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}

    def __init__(self, sleep_s: float = 30.0) -> None:
        self.sleep_s = sleep_s

    async def run(self, args, ctx) -> ToolResult:
        await asyncio.sleep(self.sleep_s)
        return ToolResult("too late")


class NotATool:
    pass

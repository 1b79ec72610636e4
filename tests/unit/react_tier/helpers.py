"""Test doubles for the agent's unit tests: a tiny in-memory knowledge base that keeps the real KnowledgeBase's
contract, tools for registry/timeout tests, and :func:`make_agent`: the real ReActAgent against the scripted
OpenAI server (tests/scripted_openai.py) with this knowledge base and a hook recorder.

FakeKnowledgeBase hands out the real record types (:class:`Passage`, :class:`Poem`) with real ids, sources and
titles copied from the real index (``suishu:卷N:W``, ``zztj:卷N:W``, ``bio:<name>``, ``poem:sui#N``; each text
is an excerpt of the real record) and refuses what the real one refuses: it runs the real ``clean_query`` and the
same ``k`` check, so an empty, over-long or junk query, a bad ``k`` or a poem lookup without text/title/author is
a :class:`KnowledgeQueryError`. tests/unit/react_tier/knowledge/test_base_contract.py runs the same cases
against this double and the real index built from data/, so the citation code meets real ids in unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

from react_tier import AgentHooks, AgentSettings, ReActAgent
from react_tier.knowledge.models import KnowledgeQueryError, Passage, Poem
from react_tier.knowledge.settings import KnowledgeSettings
from react_tier.knowledge.text import clean_query
from react_tier.results import Citation
from react_tier.tools import Tool, ToolResult
from tests.scripted_openai import ScriptedOpenAI

LIMITS = KnowledgeSettings()  # the real defaults: max_k, max_query_chars

PASSAGES = [
    Passage("suishu:卷3:18", "suishu", "隋书·帝纪卷三 炀帝上",
            "徙天下富商大贾数万家于东京。辛亥，发河南诸郡男女百余万，开通济渠，自西苑引谷、洛水达于河，自板渚引河通于淮。"),
    Passage("zztj:卷180:47", "zztj", "资治通鉴·隋纪四 大业元年（乙丑，公元六零五年）",
            "自长安至江都，置离宫四十馀所。庚申，遣黄门侍郎王弘等往江南造龙舟及杂船数万艘。"),
    Passage("bio:杨师道", "bio", "楊師道（全唐诗作者小传）",
            "楊師道，字景猷，華陰人，隋宗室也，清警有才思。"),
]
POEMS = [Poem("poem:sui#780", "春江花月夜二首 其一", "杨广", "暮江平不动，春花满正开。流波将月去，潮水带星来。", "隋"),
         Poem("poem:sui#61", "昔昔盐", "薛道衡", "垂柳覆金堤，蘼芜叶复齐。水溢芙蓉沼，花飞桃李蹊。", "隋")]


def _check(k: object, limits: KnowledgeSettings = LIMITS) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limits.max_k:
        raise KnowledgeQueryError(f"k must be an integer from 1 to {limits.max_k}, got {k!r}")
    return k


def _clean(value: object, limits: KnowledgeSettings = LIMITS) -> str:
    return clean_query(value, limits.max_query_chars)  # the real validator (and simplified form)


class FakeKnowledgeBase:
    """Passages sharing characters with the query, most shared first; scores fall down the list.
    ``settings``: the limits it applies, as the real one is loaded with them (default: the knowledge base's
    own defaults)."""

    def __init__(self, settings: KnowledgeSettings = LIMITS) -> None:
        self.settings = settings
        self.queries: list[tuple[str, int]] = []

    def search(self, query: str, k: int = 5) -> list[Passage]:
        self.queries.append((query, k))
        k, query = _check(k, self.settings), _clean(query, self.settings)
        shared = {p.id: len(set(query) & set(p.text + p.title)) for p in PASSAGES}
        hits = sorted((p for p in PASSAGES if shared[p.id]), key=lambda p: -shared[p.id])[:k]
        return [Passage(p.id, p.source, p.title, p.text, score=1.0 / (rank + 1)) for rank, p in enumerate(hits)]

    def lookup_poem(self, text: str | None = None, *, title: str | None = None, author: str | None = None,
                    k: int = 5) -> list[Poem]:
        k = _check(k, self.settings)
        fields = (("text", text), ("title", title), ("author", author))
        given = {name: _clean(value, self.settings) for name, value in fields if value is not None}
        if not given:
            raise KnowledgeQueryError("lookup_poem needs a line of verse, a title or an author")
        text, title, author = given.get("text"), given.get("title"), given.get("author")
        return [p for p in POEMS if (author and author in p.author) or (title and title in p.title)
                or (text and text[:2] in p.content)][:k]

    def get(self, passage_id: str) -> Passage | None:
        return next((p for p in PASSAGES if p.id == passage_id), None)


class SlowTool(Tool):
    """Sleeps longer than any test's tool timeout."""

    name = "slow_tool"
    description = "一个很慢的工具。"
    parameters: ClassVar[dict[str, Any]] = {"type": "object", "properties": {"query": {"type": "string"}},
                                            "required": ["query"]}

    def __init__(self, sleep_s: float = 30.0) -> None:
        self.sleep_s = sleep_s

    async def run(self, args, ctx) -> ToolResult:
        await asyncio.sleep(self.sleep_s)
        return ToolResult("too late")


class BareIdTool(Tool):
    """Returns one source whose id has no ``scheme:`` (a third-party tool's numbering: ``7``)."""

    name = "bare_source"
    description = "返回一条编号为 7 的资料。"
    parameters: ClassVar[dict[str, Any]] = {"type": "object", "properties": {"query": {"type": "string"}},
                                            "required": ["query"]}

    async def run(self, args, ctx) -> ToolResult:
        return ToolResult("[7] 隋文帝崩于大宝殿。", [Citation(id="7", source="", title="第七条")])


class NotATool:
    pass


SEARCH = 'Thought: 需要查资料\nAction: search_knowledge\nAction Input: {"query": "大业 开通济渠"}'
ANSWER = "Thought: 我现在知道最终答案了\nFinal Answer: 隋炀帝于大业元年开通济渠 [suishu:卷3:18]，参见 [made:up]。"


class Recorder(AgentHooks):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def on_run_start(self, question, request_id):
        self.calls.append(("run_start", request_id))

    async def on_llm_call(self, tier, latency_s, usage, error):
        self.calls.append(("llm", tier, error))

    def on_tool_end(self, tool, latency_s, ok):  # a sync hook works too
        self.calls.append(("tool", tool, ok))

    async def on_parse_error(self, error, raw_output):
        self.calls.append(("parse_error", raw_output, error))

    async def on_step(self, step):
        self.calls.append(("step", step.index))

    async def on_run_end(self, result, latency_s):
        self.calls.append(("run_end", result.finish_reason))


class Spans(AgentHooks):
    """Records each span opened through the hooks (name, attributes) and opens nothing."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, dict]] = []

    def span(self, name, attributes):
        self.opened.append((name, dict(attributes)))
        return contextlib.nullcontext()


def endpoint(url: str, model: str, **extra) -> dict:
    return {"base_url": url, "model": model, "timeout_s": 5, "retry_backoff_s": 0.01, **extra}


def make_agent(server: ScriptedOpenAI, url: str | None = None, **overrides) -> tuple[ReActAgent, Recorder]:
    url = url or server.base_url
    overrides = {"domain_llm": endpoint(url, "domain"), "agent_llm": endpoint(url, "agent"), **overrides}
    settings = AgentSettings.load(**overrides)
    recorder = Recorder()
    return ReActAgent.from_settings(settings, hooks=[recorder], knowledge_base=FakeKnowledgeBase()), recorder


SEARCH_ALL = 'Thought: 先查\nAction: search_knowledge\nAction Input: {"query": "隋", "k": 5}'


async def run_citing(scripted: ScriptedOpenAI, final: str, question: str = "隋朝开了哪些运河？"):
    """One real agent run: a search that returns three passages, then ``final`` (the citation tests)."""
    scripted.script("agent", SEARCH_ALL, final)
    agent, _ = make_agent(scripted, draft_first=False)
    try:
        return await agent.run(question)
    finally:
        await agent.aclose()

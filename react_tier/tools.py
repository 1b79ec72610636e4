"""Tools the agent can call: a small base class, a registry, and the built-in tools.

Add a tool without touching the loop: subclass :class:`Tool` (name, description, JSON-schema ``parameters``,
``async run``) and either decorate it with :func:`register_tool` and list its name in ``tools``, or list it in
``extra_tools`` as ``{"path": "pkg.module:Class", "kwargs": {...}}`` (see :mod:`react_tier.web_search`).
Passages a tool returns as ``sources`` become citable (their ids appear in brackets in the Observation).
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from react_tier.errors import AgentInputError
from react_tier.results import Citation
from react_tier.seams import DomainClient, Knowledge
from react_tier.settings import AgentSettings

if TYPE_CHECKING:
    from react_tier.knowledge.models import Passage

DOMAIN_SYSTEM_PROMPT = "你是隋朝历史与诗词方面的专家。请用简洁的中文回答问题，只陈述你确信的史实。"


class ToolInputError(ValueError):
    """The arguments do not fit the tool's parameter schema (fed back to the model as the Observation)."""


@dataclass
class ToolResult:
    text: str
    sources: list[Citation] = field(default_factory=list)


# A search the caller already ran for this request: (knowledge base, query, k, passages). The answer cache
# (react_tier/answer_cache.py) searches the question for its key; the run's forced first search of the same
# question takes that result instead of searching twice (the cache's miss path then costs no extra search).
PREFETCHED_SEARCH: ContextVar[tuple[Knowledge, str, int, list[Passage]] | None] = ContextVar(
    "sui_prefetched_search", default=None)


@dataclass
class ToolContext:
    """What tools may use: the domain LLM client and the (lazily loaded) knowledge base."""

    domain_llm: DomainClient | None = None
    get_knowledge: Callable[[], Awaitable[Knowledge]] | None = None
    search_k: int = 4

    async def knowledge(self) -> Knowledge:
        if self.get_knowledge is None:
            raise RuntimeError("no knowledge base configured")
        return await self.get_knowledge()


class Tool:
    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}, "required": []}

    def __init__(self, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__} takes no options, got {sorted(kwargs)}")

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        raise NotImplementedError

    def describe(self) -> str:
        """One line of the prompt (Qwen-Agent's TOOL_DESC, in Chinese)."""
        params = json.dumps(self.parameters, ensure_ascii=False)
        return f"{self.name}: {self.description} 参数：{params} 参数须为 JSON 对象。"

    def coerce_args(self, raw: dict[str, Any] | str) -> dict[str, Any]:
        """Plain text goes to the first parameter; types are checked; unknown keys are dropped."""
        props: dict[str, Any] = self.parameters.get("properties", {})
        if isinstance(raw, str):
            if not props or not raw:
                raise ToolInputError(f"{self.name} 需要 JSON 参数：{json.dumps(self.parameters, ensure_ascii=False)}")
            raw = {next(iter(props)): raw}
        args: dict[str, Any] = {}
        for key, value in raw.items():
            kind = props.get(key, {}).get("type")
            if key not in props or value is None:
                continue
            if kind == "integer":
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise ToolInputError(f"参数 {key} 必须是整数，收到 {value!r}") from None
            elif kind == "string":
                value = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            args[key] = value
        missing = [key for key in self.parameters.get("required", []) if not args.get(key)]
        if missing:
            raise ToolInputError(f"{self.name} 缺少参数 {missing}")
        return args


TOOL_REGISTRY: dict[str, type[Tool]] = {}


def register_tool(cls: type[Tool]) -> type[Tool]:
    TOOL_REGISTRY[cls.name] = cls
    return cls


def _import_tool(path: str) -> type[Tool]:
    module_name, _, class_name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise AgentInputError(f"extra tool {path!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Tool)):
        raise AgentInputError(f"extra tool {path!r} is not a react_tier.tools.Tool subclass")
    return cls


def build_tools(settings: AgentSettings) -> dict[str, Tool]:
    """The configured tools, by name (built-ins from ``tools``, then ``extra_tools``)."""
    tools: dict[str, Tool] = {}
    for name in settings.tools:
        if name not in TOOL_REGISTRY:
            raise AgentInputError(f"unknown tool {name!r}; built-in tools: {sorted(TOOL_REGISTRY)}")
        tools[name] = TOOL_REGISTRY[name]()
    for spec in settings.extra_tools:
        try:
            tool = _import_tool(spec.path)(**spec.kwargs)
        except TypeError as exc:
            raise AgentInputError(f"extra tool {spec.path!r}: bad kwargs: {exc}") from exc
        if tool.name in tools:
            raise AgentInputError(f"two tools are named {tool.name!r}")
        tools[tool.name] = tool
    return tools


CITATION_TEXT_CHARS = 600  # enough to show the passage behind a citation; the index keeps the whole text


def _cite(item: Any, source: str | None = None) -> Citation:
    text = getattr(item, "text", None) or getattr(item, "content", None) or None
    return Citation(id=str(item.id), source=source or getattr(item, "source", "") or "",
                    title=getattr(item, "title", "") or "", text=text[:CITATION_TEXT_CHARS] if text else None)


@register_tool
class AskSuiExpertTool(Tool):
    name = "ask_sui_expert"
    description = "向隋朝领域专家模型（内部知识）提问，返回其回答；回答可能有误，需用资料核实。"
    parameters: ClassVar[dict[str, Any]] = {"type": "object",
                                            "properties": {"question": {"type": "string", "description": "问题"}},
                                            "required": ["question"]}

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        completion = await ctx.domain_llm.complete([{"role": "system", "content": DOMAIN_SYSTEM_PROMPT},
                                                    {"role": "user", "content": args["question"]}])
        return ToolResult(completion.text.strip() or "（专家没有回答）")


@register_tool
class SearchKnowledgeTool(Tool):
    name = "search_knowledge"
    description = "检索隋朝史料知识库（《隋书》《资治通鉴》、人物传记、隋代诗歌），返回带编号的段落。"
    parameters: ClassVar[dict[str, Any]] = {"type": "object",
                  "properties": {"query": {"type": "string", "description": "检索词"},
                                 "k": {"type": "integer", "description": "返回段落数，1-10", "minimum": 1,
                                       "maximum": 10}},
                  "required": ["query"]}

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        kb = await ctx.knowledge()
        k = max(1, min(int(args.get("k") or ctx.search_k), 10))
        prefetched = PREFETCHED_SEARCH.get()
        if prefetched is not None and prefetched[0] is kb and prefetched[1:3] == (args["query"], k):
            passages = prefetched[3]
        else:
            passages = await asyncio.to_thread(kb.search, args["query"], k)
        if not passages:
            return ToolResult("没有找到相关资料。")
        lines = [f"[{p.id}] 《{p.title}》：{p.text}" for p in passages]
        return ToolResult("\n".join(lines), [_cite(p) for p in passages])


@register_tool
class LookupPoemTool(Tool):
    name = "lookup_poem"
    description = "按诗句、诗题或作者查找隋代诗歌原文（至少给出 text、title、author 之一）。"
    parameters: ClassVar[dict[str, Any]] = {"type": "object",
                  "properties": {"text": {"type": "string", "description": "诗句片段"},
                                 "title": {"type": "string", "description": "诗题"},
                                 "author": {"type": "string", "description": "作者"}},
                  "required": []}

    def coerce_args(self, raw: dict[str, Any] | str) -> dict[str, Any]:
        args = super().coerce_args(raw)
        if not any(args.get(key) for key in ("text", "title", "author")):
            raise ToolInputError("lookup_poem 至少需要 text、title、author 之一")
        return args

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        kb = await ctx.knowledge()
        poems = await asyncio.to_thread(lambda: kb.lookup_poem(args.get("text"), title=args.get("title"),
                                                               author=args.get("author"), k=3))
        # a named group of poems (组诗) answers "how many / which ones" from its record, not from one poem's text
        group = kb.poem_group(args["title"]) if args.get("title") and hasattr(kb, "poem_group") else None
        if not poems and group is None:
            return ToolResult("没有找到相关诗歌。")
        lines = [f"[{p.id}] 《{p.title}》 {p.facts_line()}：{p.content}" for p in poems]
        sources = [_cite(p, source="poem") for p in poems]
        if group is not None:
            lines.insert(0, f"[{group.id}] {group.text()}")
            sources.insert(0, _cite(kb.get(group.id)))
        return ToolResult("\n".join(lines), sources)

"""The built-in tools (react_tier/tools.py) pinned: what each sends to the knowledge base or the domain
model, the Observation text and citations it returns, argument coercion, the prompt line, the registry and
operator tools. Issue #25, item 5: a hand-made bug (search_knowledge no longer clamping the model's k to
1-10) went unnoticed."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

from react_tier.errors import AgentInputError
from react_tier.results import Citation
from react_tier.settings import AgentSettings
from react_tier.tools import (
    CITATION_TEXT_CHARS,
    DOMAIN_SYSTEM_PROMPT,
    TOOL_REGISTRY,
    AskSuiExpertTool,
    LookupPoemTool,
    SearchKnowledgeTool,
    Tool,
    ToolContext,
    ToolInputError,
    ToolResult,
    _cite,
    build_tools,
    register_tool,
)
from tests.unit.react_tier.helpers import PASSAGES, POEMS, FakeKnowledgeBase


def context(kb=None, search_k: int = 4, domain=None) -> ToolContext:
    async def get():
        return kb

    return ToolContext(domain_llm=domain, get_knowledge=get if kb is not None else None, search_k=search_k)


@pytest.mark.parametrize(("k", "sent"), [(50, 10), (11, 10), (10, 10), (3, 3), (1, 1), (-3, 1), (0, 4),
                                         (None, 4), ("7", 7)])
async def test_search_knowledge_clamps_the_models_k_to_1_10(k, sent):
    kb = FakeKnowledgeBase()
    args = {"query": "开通济渠"} if k is None else {"query": "开通济渠", "k": k}
    await SearchKnowledgeTool().run(args, context(kb))
    assert kb.queries == [("开通济渠", sent)]


async def test_search_knowledge_uses_the_tiers_default_k():
    kb = FakeKnowledgeBase()
    await SearchKnowledgeTool().run({"query": "隋"}, context(kb, search_k=2))
    assert kb.queries == [("隋", 2)]


async def test_search_knowledge_lists_each_passage_with_its_id_and_cites_it():
    result = await SearchKnowledgeTool().run({"query": "通济渠 东京"}, context(FakeKnowledgeBase()))
    first = PASSAGES[0]
    assert result.text.splitlines()[0] == f"[{first.id}] 《{first.title}》：{first.text}"
    assert [c.id for c in result.sources] == [line.split("]")[0][1:] for line in result.text.splitlines()]
    assert result.sources[0] == Citation(id=first.id, source="suishu", title=first.title, text=first.text)


async def test_search_knowledge_without_hits_says_so():
    result = await SearchKnowledgeTool().run({"query": "xyz"}, context(FakeKnowledgeBase()))
    assert result == ToolResult("没有找到相关资料。") and result.sources == []


async def test_a_tool_without_a_knowledge_base_fails_clearly():
    with pytest.raises(RuntimeError, match="^no knowledge base configured$"):
        await SearchKnowledgeTool().run({"query": "隋"}, context())


async def test_lookup_poem_by_author_title_and_line():
    kb = FakeKnowledgeBase()
    result = await LookupPoemTool().run({"author": "薛道衡"}, context(kb))
    poem = POEMS[1]
    assert result.text == f"[{poem.id}] 《{poem.title}》 {poem.facts_line()}：{poem.content}"
    assert result.sources == [Citation(id=poem.id, source="poem", title=poem.title, text=poem.content)]
    assert (await LookupPoemTool().run({"title": "春江花月夜"}, context(kb))).sources[0].id == "poem:sui#780"
    assert (await LookupPoemTool().run({"text": "暮江平不动"}, context(kb))).sources[0].id == "poem:sui#780"
    assert (await LookupPoemTool().run({"author": "无名氏"}, context(kb))).text == "没有找到相关诗歌。"


class GroupKB(FakeKnowledgeBase):
    """A knowledge base with one poem group record (组诗), as the real one has."""

    class Group:
        id = "poemgroup:春江花月夜"

        @staticmethod
        def text() -> str:
            return "《春江花月夜》组诗，共二首。"

    def poem_group(self, title):
        return self.Group() if "春江花月夜" in title else None

    def get(self, passage_id):
        from react_tier.knowledge.models import Passage

        if passage_id == self.Group.id:
            return Passage(passage_id, "poem", "春江花月夜（组诗）", self.Group.text())
        return super().get(passage_id)


async def test_lookup_poem_puts_a_named_group_first():
    result = await LookupPoemTool().run({"title": "春江花月夜"}, context(GroupKB()))
    lines = result.text.splitlines()
    assert lines[0] == "[poemgroup:春江花月夜] 《春江花月夜》组诗，共二首。"
    assert lines[1].startswith("[poem:sui#780]")
    assert [c.id for c in result.sources] == ["poemgroup:春江花月夜", "poem:sui#780"]
    assert result.sources[0].source == "poem" and result.sources[0].title == "春江花月夜（组诗）"
    only_group = await LookupPoemTool().run({"title": "春江花月夜", "author": "无名氏"}, context(GroupKB()))
    assert only_group.text.startswith("[poemgroup:春江花月夜]")  # the group alone is still an answer
    no_title = await LookupPoemTool().run({"author": "杨广"}, context(GroupKB()))
    assert [c.id for c in no_title.sources] == ["poem:sui#780"]  # a group only for a title


async def test_lookup_poem_asks_the_knowledge_base_for_three():
    class Recording(FakeKnowledgeBase):
        def lookup_poem(self, text=None, *, title=None, author=None, k=5):
            self.asked = (text, title, author, k)
            return super().lookup_poem(text, title=title, author=author, k=k)

    kb = Recording()
    await LookupPoemTool().run({"text": "空梁", "title": "昔昔盐", "author": "薛道衡"}, context(kb))
    assert kb.asked == ("空梁", "昔昔盐", "薛道衡", 3)


def test_lookup_poem_needs_text_title_or_author():
    with pytest.raises(ToolInputError, match="至少需要 text、title、author 之一"):
        LookupPoemTool().coerce_args({"text": "", "title": None})
    assert LookupPoemTool().coerce_args("空梁落燕泥") == {"text": "空梁落燕泥"}
    assert LookupPoemTool().coerce_args({"author": "薛道衡", "x": 1}) == {"author": "薛道衡"}
    assert LookupPoemTool().coerce_args({"title": "昔昔盐"}) == {"title": "昔昔盐"}


async def test_ask_sui_expert_asks_the_domain_model_with_its_system_prompt():
    class Domain:
        def __init__(self, text: str) -> None:
            self.text, self.sent = text, []

        async def complete(self, messages):
            self.sent.append(messages)
            return type("Completion", (), {"text": self.text})()

    domain = Domain("  隋文帝杨坚。 ")
    result = await AskSuiExpertTool().run({"question": "谁建立了隋朝？"}, context(domain=domain))
    assert result == ToolResult("隋文帝杨坚。")
    assert domain.sent == [[{"role": "system", "content": DOMAIN_SYSTEM_PROMPT},
                            {"role": "user", "content": "谁建立了隋朝？"}]]
    silent = await AskSuiExpertTool().run({"question": "q"}, context(domain=Domain(" ")))
    assert silent.text == "（专家没有回答）"


def test_coercion_of_plain_text_types_and_missing_arguments():
    tool = SearchKnowledgeTool()
    assert tool.coerce_args("杨素") == {"query": "杨素"}
    as_text = json.dumps({"a": "隋"}, ensure_ascii=False)
    assert tool.coerce_args({"query": {"a": "隋"}, "k": 2.0}) == {"query": as_text, "k": 2}
    assert tool.coerce_args({"query": "x", "k": None}) == {"query": "x"}
    with pytest.raises(ToolInputError) as no_args:
        tool.coerce_args("")
    schema = json.dumps(tool.parameters, ensure_ascii=False)
    assert str(no_args.value) == f"search_knowledge 需要 JSON 参数：{schema}"
    assert "检索词" in str(no_args.value)
    # unknown keys are skipped, wherever they are
    assert tool.coerce_args({"extra": 1, "query": "隋", "k": 2}) == {"query": "隋", "k": 2}
    with pytest.raises(ToolInputError, match="参数 k 必须是整数，收到 \\[1\\]"):
        tool.coerce_args({"query": "x", "k": [1]})
    with pytest.raises(ToolInputError, match=r"search_knowledge 缺少参数 \['query'\]"):
        tool.coerce_args({"query": ""})

    class NoParams(Tool):
        name, description = "none", "无参数"

    with pytest.raises(ToolInputError, match="none 需要 JSON 参数"):
        NoParams().coerce_args("x")
    assert NoParams().coerce_args({"a": 1}) == {}

    class Bare(Tool):  # a schema without "properties" or "required"
        name, description = "bare", "裸"
        parameters: ClassVar[dict] = {"type": "object"}

    assert Bare().coerce_args({"a": 1}) == {}
    with pytest.raises(ToolInputError, match="bare 需要 JSON 参数"):
        Bare().coerce_args("x")


def test_the_prompt_line_of_a_tool():
    line = SearchKnowledgeTool().describe()
    params = json.dumps(SearchKnowledgeTool.parameters, ensure_ascii=False)
    assert line == f"search_knowledge: {SearchKnowledgeTool.description} 参数：{params} 参数须为 JSON 对象。"
    assert '"minimum": 1, "maximum": 10' in line  # what the model is told is what run() enforces


def test_a_tool_takes_no_options_unless_it_says_so():
    with pytest.raises(TypeError, match=r"SearchKnowledgeTool takes no options, got \['x'\]"):
        SearchKnowledgeTool(x=1)


async def test_the_base_tool_has_no_run():
    with pytest.raises(NotImplementedError):
        await Tool().run({}, ToolContext())


def test_registry_and_build_order():
    assert {"ask_sui_expert", "search_knowledge", "lookup_poem"} <= set(TOOL_REGISTRY)
    tools = build_tools(AgentSettings.load(tools=["lookup_poem", "search_knowledge"],
                                           extra_tools=[{"path": "tests.unit.react_tier.helpers:SlowTool"}]))
    assert list(tools) == ["lookup_poem", "search_knowledge", "slow_tool"]
    assert isinstance(tools["lookup_poem"], LookupPoemTool)

    @register_tool
    class Echo(Tool):
        name, description = "echo_test_tool", "回声"

    try:
        assert TOOL_REGISTRY["echo_test_tool"] is Echo
        assert list(build_tools(AgentSettings.load(tools=["echo_test_tool"]))) == ["echo_test_tool"]
    finally:
        del TOOL_REGISTRY["echo_test_tool"]
    with pytest.raises(AgentInputError, match=r"unknown tool 'x'; built-in tools: \['ask_sui_expert'"):
        build_tools(AgentSettings.load(tools=["x"]))


def test_a_citation_keeps_the_passage_text_cut_to_its_limit():
    class Item:
        id, source, title, text = "bio:杨素", "bio", "杨素", "素" * (CITATION_TEXT_CHARS + 5)

    citation = _cite(Item())
    assert citation.text == "素" * CITATION_TEXT_CHARS
    assert citation.source == "bio" and citation.id == "bio:杨素"
    assert _cite(Item(), source="poem").source == "poem"

    class Bare:
        id, content = 7, ""

    assert _cite(Bare()) == Citation(id="7", source="", title="", text=None)

    class IdOnly:
        id = "x:1"

    assert _cite(IdOnly()) == Citation(id="x:1", source="", title="", text=None)

"""Citations pinned (react_tier/agent.py): only ids a tool returned AND the answer or a Thought mentions, in order of
first mention (answer first), ``[id]`` or ``【id】`` with spaces allowed; never every observed id as a fallback,
never an invented id. Runs the real ReActAgent against the scripted OpenAI server and the contract-keeping
FakeKnowledgeBase (real ids)."""

from __future__ import annotations

from tests.unit.react_tier.helpers import make_agent
from tests.unit.react_tier.helpers import run_citing as _run


async def test_citations_come_from_the_answer_then_the_thoughts_in_order(scripted):
    result = await _run(scripted, "Thought: 据【zztj:卷180:47】可知造龙舟\n"
                                  "Final Answer: 开通济渠见 [suishu:卷3:18]，又见 [ suishu:卷3:18 ] 与 [bio:不存在]。")
    assert all(f"[{pid}]" in result.steps[0].observation  # the search returned all three
               for pid in ("suishu:卷3:18", "zztj:卷180:47", "bio:杨师道"))
    assert [c.id for c in result.citations] == ["suishu:卷3:18", "zztj:卷180:47"]
    assert [c.source for c in result.citations] == ["suishu", "zztj"]
    assert result.citations[0].title == "隋书·帝纪卷三 炀帝上" and "开通济渠" in result.citations[0].text


async def test_an_answer_that_cites_nothing_lists_its_evidence_visibly(scripted):
    result = await _run(scripted, "Thought: 够了\nFinal Answer: 隋炀帝开通济渠。")
    assert result.finish_reason == "stop"
    assert result.answer.startswith("隋炀帝开通济渠。\n\n参考资料：[suishu:卷3:18]《隋书·帝纪卷三 炀帝上》；")
    # the citations are exactly the evidence the answer now shows, nothing silent
    assert [c.id for c in result.citations] == ["suishu:卷3:18", "zztj:卷180:47", "bio:杨师道"]
    assert all(f"[{c.id}]" in result.answer for c in result.citations)


async def test_a_thought_alone_can_cite(scripted):
    result = await _run(scripted, "Thought: 见 [bio:杨师道]\nFinal Answer: 杨师道是隋宗室。")
    assert [c.id for c in result.citations] == ["bio:杨师道"]


async def test_an_id_a_tool_returned_is_cited_whatever_its_form(scripted):
    """A tool's own numbering (``7``, no ``scheme:``) is a citation once that tool returned it (react_format's
    known ids); the same bracket without the tool's result is text."""
    scripted.script("agent", 'Thought: 查\nAction: bare_source\nAction Input: {"query": "隋文帝"}',
                    "Thought: 好\nFinal Answer: 隋文帝崩于大宝殿 [7]，又见 [8]。")
    bare = {"path": "tests.unit.react_tier.helpers:BareIdTool"}
    agent, _ = make_agent(scripted, draft_first=False, extra_tools=[bare])
    try:
        result = await agent.run("隋文帝崩于何处？")
    finally:
        await agent.aclose()
    assert [c.id for c in result.citations] == ["7"] and result.citations[0].title == "第七条"

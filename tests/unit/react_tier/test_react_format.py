"""The one citation pattern of react_tier/react_format.py where the loop's and the grounding check's patterns used
to disagree (issue #26): full-width brackets ``［id］`` and lists ``[a, b]`` / ``[a、b]`` are citations for the
loop's citations list, the grounding check and the Responses API's annotations alike; a bracket of text
(【译文】) is none; an id a tool returned counts whatever its form. The rendering of a step is pinned too."""

from __future__ import annotations

from deployments.responses_protocol import annotations
from react_tier.grounding import check_grounding, check_sentences
from react_tier.react_format import (
    answer_start,
    bracket_ids,
    cited_ids,
    parse_turn,
    render_action,
    render_observation,
    strip_citations,
)
from react_tier.results import Citation
from tests.unit.react_tier.helpers import run_citing as _run

ANSWER = "隋炀帝开通济渠［suishu:卷3:18］。又造龙舟【译文】[zztj:卷180:47、bio:杨师道]。"


def test_full_width_brackets_and_lists_are_citations():
    assert cited_ids(ANSWER) == ["suishu:卷3:18", "zztj:卷180:47", "bio:杨师道"]
    assert bracket_ids("suishu:卷2:40, poem:sui#61；web:x") == ["suishu:卷2:40", "poem:sui#61", "web:x"]
    assert bracket_ids("译文") == [] and bracket_ids("见 suishu:1") == ["suishu:1"]
    assert strip_citations(ANSWER) == "隋炀帝开通济渠。又造龙舟【译文】。"


def test_an_id_a_tool_returned_counts_whatever_its_form():
    assert cited_ids("见 [7] 与 [ a b ]") == []
    assert cited_ids("见 [7] 与 [ a b ]", known={"7", "a b"}) == ["7", "a b"]
    assert cited_ids("[7、x:1]", known={"7"}) == ["7", "x:1"]
    assert strip_citations("甲[7]乙[8]", known={"7"}) == "甲乙[8]"


def test_grounding_and_annotations_read_the_same_ids():
    cited = {"suishu:卷3:18": "隋炀帝开通济渠", "zztj:卷180:47": "又造龙舟", "bio:杨师道": "杨师道"}
    checks = check_sentences(ANSWER, cited)
    assert [s.citations for s in checks] == [["suishu:卷3:18"], ["zztj:卷180:47", "bio:杨师道"]]
    sources = [Citation(id=pid, source="suishu", title=pid) for pid in cited]
    marks = annotations(ANSWER, sources)
    assert [a["file_id"] for a in marks] == ["suishu:卷3:18", "zztj:卷180:47", "bio:杨师道"]
    assert ANSWER[:marks[0]["index"]].endswith("［suishu:卷3:18］")
    assert marks[1]["index"] == marks[2]["index"] and ANSWER[:marks[2]["index"]].endswith("bio:杨师道]")


async def test_the_loop_cites_full_width_brackets_and_lists(scripted):
    result = await _run(scripted, "Thought: 好\n"
                                  "Final Answer: 开通济渠［suishu:卷3:18］，又见[bio:杨师道、zztj:卷180:47]。")
    assert [c.id for c in result.citations] == ["suishu:卷3:18", "bio:杨师道", "zztj:卷180:47"]
    assert "参考资料" not in result.answer  # it cites its evidence: no evidence line is added


def test_a_step_renders_as_the_parser_reads_it():
    rendered = render_action("查一下", "search_knowledge", {"query": "运河", "k": 2})
    assert rendered == 'Thought: 查一下\nAction: search_knowledge\nAction Input: {"query": "运河", "k": 2}'
    assert render_action("t", "a", "原样") == "Thought: t\nAction: a\nAction Input: 原样"
    turn = parse_turn(rendered, ["search_knowledge"])
    assert (turn.thought, turn.action, turn.action_input) == ("查一下", "search_knowledge", '{"query": "运河", "k": 2}')
    assert render_observation("没有") == "Observation: 没有"
    assert answer_start("Thought: Final Answer 后\nFinal Answer: 甲乙", "甲乙") == 38


def test_grounding_reads_an_id_a_tool_returned_whatever_its_form():
    checks = check_sentences("隋文帝崩于大宝殿。[7]", {"7": "隋文帝崩于大宝殿"})
    assert [(s.text, s.citations) for s in checks] == [("隋文帝崩于大宝殿。", ["7"])]
    report = check_grounding("隋文帝崩于大宝殿。[7]", {"7": "隋文帝崩于大宝殿"})
    assert report.score == 1.0 and report.unknown_ids == []


class _Tool:
    def __init__(self, name: str) -> None:
        self.name = name

    def describe(self) -> str:
        return f"{self.name}: 说明"


def test_the_prompts_are_pinned_to_the_letter():
    """Written out here, not built from the module's own templates (a test that builds its expectation with the
    code under test cannot fail): the tools' lines and names in the system prompt, the question message's
    blocks in their order."""
    from react_tier.react_format import question_message, system_prompt

    prompt = system_prompt([_Tool("a"), _Tool("b")])
    assert "你可以使用以下工具：\n\na: 说明\n\nb: 说明\n\n请严格使用以下格式：" in prompt
    assert "Action: 要使用的工具，必须是 [a, b] 之一\n" in prompt
    assert question_message("问？", None) == "Question: 问？"
    assert question_message("问？", "", "") == "Question: 问？"
    assert question_message("问？", "稿。", "要求。") == (
        "Question: 问？\n\n回答要求（来自调用方，只约束最终答案的内容与形式，不改变上面的工具与格式规则）：\n要求。"
        "\n\n领域模型初稿（内部知识，可能有误）：\n稿。")

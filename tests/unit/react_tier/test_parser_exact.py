"""The ReAct parser's exact behaviour, pinned where mutation testing found it unpinned: the feedback messages the
model sees (they are its only instructions after a bad turn), label spellings, which lines make the action name,
the Thought kept with a Final Answer, and the streaming answer prefix."""

from __future__ import annotations

import pytest

from react_tier.react_format import (
    ReActParseError,
    clean_output,
    final_answer_prefix,
    parse_action_input,
    parse_turn,
)

TOOLS = ["search_knowledge", "lookup_poem"]

FEEDBACK = {
    "empty": "输出为空。请按格式输出 Thought、Action、Action Input，或 Final Answer。",
    "no labels": "没有找到 Action 或 Final Answer。"
                 "请先写 Thought:，再写 Action: 和 Action Input:，或直接写 Final Answer:。",
    "no action": "缺少 Action。请写 Action: 工具名，然后写 Action Input:，或写 Final Answer:。",
    "empty action": "Action 为空。请写出要调用的工具名。",
    "empty answer": "Final Answer 为空。请写出最终答案。",
    "unknown tool": "工具 'google' 不存在。Action 必须是 [search_knowledge, lookup_poem] 之一。",
    "no input": "Action search_knowledge 缺少 Action Input。请在下一行写 Action Input: 及 JSON 参数。",
}


@pytest.mark.parametrize("text, kind", [
    (" \n<|im_end|>", "empty"),
    ("隋朝是杨坚建立的。", "no labels"),
    ("Thought: 我要查一下资料", "no action"),
    ("Thought: 查\nAction:\nAction Input: {}", "empty action"),
    ("Thought: 好\nFinal Answer:   ", "empty answer"),
    ('Thought: 查\nAction: google\nAction Input: {"q": "x"}', "unknown tool"),
    ("Thought: 查\nAction: search_knowledge", "no input"),
])
def test_feedback_messages_are_exact(text, kind):
    with pytest.raises(ReActParseError) as info:
        parse_turn(text, TOOLS)
    assert str(info.value) == FEEDBACK[kind]


def test_broken_json_feedback_quotes_80_characters():
    raw = '{"query": "' + "隋" * 100
    with pytest.raises(ReActParseError) as info:
        parse_action_input(raw)
    assert str(info.value) == (f"Action Input 不是合法的 JSON 对象：{raw[:80]}。请输出完整的 JSON，例如 "
                               '{"query": "隋炀帝 运河"}。')


def test_action_name_is_its_first_line_only():
    turn = parse_turn('Thought: 想\nAction: search_knowledge\n（先查资料）\nAction Input: {"query": "x"}')
    assert turn.action == "search_knowledge" and turn.action_input == '{"query": "x"}'


def test_only_quoting_characters_are_stripped_from_the_action():
    assert parse_turn("Action: 【XTool】\nAction Input: {}").action == "XTool"
    assert parse_turn("Action: `lookup_poem()`\nAction Input: {}").action == "lookup_poem"


def test_plain_action_input_keeps_everything_but_quotes():
    assert parse_action_input("'XX杨素XX'") == "XX杨素XX"


@pytest.mark.parametrize("text, expected", [
    ("Thought: 想好了\nFinal Answer: 甲", ("想好了", None, None, "甲")),
    ("Final Answer: 甲", ("", None, None, "甲")),
    ("FinalAnswer: 甲", ("", None, None, "甲")),
    ("final   answer: 甲", ("", None, None, "甲")),
    ("Action: search_knowledge\nActionInput: 乙", ("", "search_knowledge", "乙", None)),
    ("Action: search_knowledge\nACTION\tINPUT: 乙", ("", "search_knowledge", "乙", None)),
])
def test_turn_fields(text, expected):
    turn = parse_turn(text)
    assert (turn.thought, turn.action, turn.action_input, turn.final_answer) == expected


@pytest.mark.parametrize("text, cleaned", [
    ("Thought: x\nQuestion: 又一个问题", "Thought: x"),              # a new Question after the turn is cut
    ("Question: 隋？\nThought: x\nFinal Answer: y", "Question: 隋？\nThought: x\nFinal Answer: y"),  # opening kept
    ("  Thought: a  ", "  Thought: a"),                              # only the end is stripped
    ("Ob", ""), ("x Obs", "x"), ("答Ob", "答Ob"), ("O", "O"),
])
def test_clean_output(text, cleaned):
    assert clean_output(text) == cleaned


@pytest.mark.parametrize("partial, prefix", [
    ("Thought: t\nFinal Answer: 甲乙\nAction: x", "甲乙"),           # ends at the next label
    ("Final Answer: 隋文帝杨坚建立了隋朝开皇元年了呢", "隋文帝杨"),   # the last 12 characters are held back
    ("**Final Answer:**  隋文帝杨坚建立了隋朝开皇元年了呢", "隋文帝杨"),
    ("Final Answer: 隋文<|im_end|>帝杨坚建立了隋朝开皇元年了呢", "隋文帝杨"),  # special tokens are dropped
    ("Action: s\nFinal Answer: 隋文帝杨坚建立了隋朝开皇元年了呢", ""),   # an action came first
    ("Action Input: {}\nFinal Answer: 隋文帝杨坚建立了隋朝开皇元年了呢", ""),
    ("Observation: r\nFinal Answer: 隋文帝杨坚建立了隋朝开皇元年了呢", ""),
    ("Thought: 还在想", ""),
])
def test_final_answer_prefix(partial, prefix):
    assert final_answer_prefix(partial) == prefix

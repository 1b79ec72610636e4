"""The ReAct output parser against the malformed outputs small models really produce."""

from __future__ import annotations

import pytest

from react_tier.react_format import (
    ReActParseError,
    ReActTurn,
    clean_output,
    final_answer_prefix,
    parse_action_input,
    parse_turn,
)

TOOLS = ["ask_sui_expert", "search_knowledge", "lookup_poem"]


def turn(text: str) -> ReActTurn:
    return parse_turn(text, TOOLS)


def test_well_formed_action():
    parsed = turn('Thought: 先查资料\nAction: search_knowledge\nAction Input: {"query": "大运河"}')
    assert parsed == ReActTurn(thought="先查资料", action="search_knowledge", action_input='{"query": "大运河"}')


def test_well_formed_final_answer():
    parsed = turn("Thought: 我现在知道最终答案了\nFinal Answer: 隋炀帝 [suishu:3:1]")
    assert parsed.final_answer == "隋炀帝 [suishu:3:1]" and parsed.action is None


@pytest.mark.parametrize("text, expected", [
    # 1 Chinese full-width colons
    ('Thought：查一下\nAction：search_knowledge\nAction Input：{"query": "杨素"}',
     ("search_knowledge", '{"query": "杨素"}')),
    # 2 extra whitespace, odd case, spaces around colons
    ('  thought :  查一下 \n\n  ACTION :   search_knowledge  \n action   input :   {"query": "杨素"}  \n',
     ("search_knowledge", '{"query": "杨素"}')),
    # 3 hallucinated Observation and a fake second turn after it
    (('Thought: 查\nAction: search_knowledge\nAction Input: {"query": "杨素"}\nObservation: 杨素是...\n'
      'Thought: 好\nFinal Answer: 编造的答案'), ("search_knowledge", '{"query": "杨素"}')),
    # 4 leaked stop-word fragment at the end of the input (split tokens)
    ('Thought: 查\nAction: search_knowledge\nAction Input: {"query": "杨素"}\nObserv',
     ("search_knowledge", '{"query": "杨素"}')),
    # 5 leaked fragment glued to the JSON
    ('Action: search_knowledge\nAction Input: {"query": "杨素"}Obs', ("search_knowledge", '{"query": "杨素"}')),
    # 6 plain-text input instead of JSON
    ("Thought: 查\nAction: search_knowledge\nAction Input: 隋炀帝 大运河", ("search_knowledge", "隋炀帝 大运河")),
    # 7 markdown bold labels
    ('**Thought:** 查\n**Action:** search_knowledge\n**Action Input:** {"query": "杨素"}',
     ("search_knowledge", '{"query": "杨素"}')),
    # 8 action name in backticks with parentheses
    ('Thought: 查\nAction: `search_knowledge()`\nAction Input: {"query": "杨素"}',
     ("search_knowledge", '{"query": "杨素"}')),
    # 9 chat special tokens leaked into the text
    ('Thought: 查<|im_end|>\nAction: search_knowledge\nAction Input: {"query": "杨素"}<|im_end|>',
     ("search_knowledge", '{"query": "杨素"}')),
    # 10 action first, then a final answer: the first one wins
    ('Thought: 查\nAction: search_knowledge\nAction Input: {"query": "杨素"}\nFinal Answer: 先答了',
     ("search_knowledge", '{"query": "杨素"}')),
    # 11 two actions in one turn: only the first is run
    (('Thought: 查\nAction: search_knowledge\nAction Input: {"query": "杨素"}\nThought: 再查\n'
      'Action: lookup_poem\nAction Input: {"author": "杨广"}'), ("search_knowledge", '{"query": "杨素"}')),
    # 12 missing Thought, labels glued to Chinese text
    ('好的Action: lookup_poem\nAction Input: {"author": "杨广"}', ("lookup_poem", '{"author": "杨广"}')),
    # 13 input in a ```json code fence (raw kept; parse_action_input unwraps it)
    ('Thought: 查\nAction: search_knowledge\nAction Input: ```json\n{"query": "杨素"}\n```',
     ("search_knowledge", '```json\n{"query": "杨素"}\n```')),
    # 14 the model repeats "Question:" first
    ('Question: 杨素是谁？\nThought: 查\nAction: search_knowledge\nAction Input: {"query": "杨素"}',
     ("search_knowledge", '{"query": "杨素"}')),
])
def test_malformed_but_usable_actions(text, expected):
    parsed = turn(text)
    assert (parsed.action, parsed.action_input) == expected


@pytest.mark.parametrize("text, answer", [
    # 15 final answer first, then an action: the answer wins
    ("Thought: 知道了\nFinal Answer: 隋文帝杨坚\nAction: search_knowledge\nAction Input: {}", "隋文帝杨坚"),
    # 16 final answer with a full-width colon and a leaked stop word
    ("Final Answer：隋文帝杨坚建立隋朝。\nObservation", "隋文帝杨坚建立隋朝。"),
    # 17 final answer followed by a hallucinated new question
    ("Thought: 好\nFinal Answer: 杨坚\nQuestion: 下一个问题？", "杨坚"),
    # 18 multi-line answer kept whole
    ("Final Answer: 第一，开凿运河；\n第二，营建东都。", "第一，开凿运河；\n第二，营建东都。"),
])
def test_final_answers(text, answer):
    assert turn(text).final_answer == answer


@pytest.mark.parametrize("text, complaint", [
    ("", "输出为空"),                                                       # 19 empty
    ("   \n <|im_end|> ", "输出为空"),                                      # 20 only whitespace/special tokens
    ("隋朝是杨坚建立的。", "没有找到 Action"),                               # 21 plain prose, no labels
    ("Thought: 我要查一下资料", "缺少 Action"),                              # 22 thought only (truncated)
    ("Thought: 查\nAction: search_knowledge", "缺少 Action Input"),          # 23 missing Action Input
    ('Thought: 查\nAction: google\nAction Input: {"q": "x"}', "不存在"),     # 24 unknown tool
    ("Thought: 查\nAction:\nAction Input: {}", "Action 为空"),               # 25 empty action
    ("Thought: 好\nFinal Answer:   ", "Final Answer 为空"),                  # 26 empty final answer
    ("Observation: 自己编的结果", "输出为空"),                               # 27 starts with a fake Observation
])
def test_unusable_outputs_explain_what_to_fix(text, complaint):
    with pytest.raises(ReActParseError, match=complaint):
        turn(text)


def test_unknown_tool_message_lists_the_real_tools():
    with pytest.raises(ReActParseError) as info:
        turn('Action: google\nAction Input: {"q": "x"}')
    assert all(name in str(info.value) for name in TOOLS)


@pytest.mark.parametrize("raw, expected", [
    ('{"query": "杨素", "k": 3}', {"query": "杨素", "k": 3}),
    ('```json\n{"query": "杨素"}\n```', {"query": "杨素"}),
    ("{'query': '杨素'}", {"query": "杨素"}),                      # Python-dict style
    ('"隋炀帝"', "隋炀帝"),                                         # a quoted plain string
    ("隋炀帝 运河", "隋炀帝 运河"),
])
def test_action_input_forms(raw, expected):
    assert parse_action_input(raw) == expected


def test_truncated_json_input_is_an_error():  # 28 output cut by max_tokens in the middle of the JSON
    with pytest.raises(ReActParseError, match="不是合法的 JSON"):
        parse_action_input('{"query": "隋炀帝')


def test_clean_output_keeps_a_real_word_starting_with_ob():
    assert clean_output("Final Answer: the Oboe") == "Final Answer: the Oboe"
    assert clean_output('Action Input: {"q": 1}\nObservatio') == 'Action Input: {"q": 1}'


def test_final_answer_prefix_for_streaming():
    assert final_answer_prefix('Thought: x\nAction: search_knowledge\nAction Input: {"query": "Final Answer: y"}') == ""
    assert final_answer_prefix("Thought: 好\nFinal Answer: 隋文帝杨坚建立了隋朝", holdback=4) == "隋文帝杨坚建"
    assert final_answer_prefix("Final Answer: 杨坚\nObservation: x", holdback=4) == "杨坚"
    assert final_answer_prefix("Thought: 还在想", holdback=0) == ""

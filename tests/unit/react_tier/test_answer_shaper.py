"""The answer shaper of the ReAct loop (react_tier/answer_shaper.AnswerShaper) as a unit: the request's stop strings and
max_tokens applied to a streamed answer, in the agent model's tokens (completion marks), with the held-back tail."""

from __future__ import annotations

import pytest

from react_tier.answer_shaper import AnswerShaper, StreamedTurn
from react_tier.request import GenerationOptions

TURN = "Final Answer: 甲乙丙丁戊"
MARKS = [(14, 0), (16, 2), (18, 4), (19, 5)]  # two tokens per two characters, then one


def shape(*offers, stop=(), cap=None):
    """(deltas emitted, shown, tokens, truncated, ended) after ``offers`` of (answer, completion, final)."""
    deltas: list[str] = []
    shaper = AnswerShaper(GenerationOptions(stop=list(stop), max_tokens=cap), lambda d: deltas.append(d.text))
    for answer, completion, final in offers:
        shaper.offer(answer, completion, final=final)
    return deltas, shaper.shown, shaper.tokens, shaper.truncated, shaper.ended


def turn(text=TURN, marks=MARKS, **kw) -> StreamedTurn:
    return StreamedTurn(text, marks=list(marks), **kw)


@pytest.mark.parametrize("cap, expected", [
    (5, (["甲乙丙丁戊"], "甲乙丙丁戊", 5, False, True)),   # exactly the cap: not truncated
    (4, (["甲乙丙丁"], "甲乙丙丁", 4, True, True)),
    (3, (["甲乙"], "甲乙", 2, True, True)),                # cut at the last whole chunk within the cap
    (1, ([], "", 0, True, True)),                          # the first chunk is already over the cap
])
def test_max_tokens_cuts_at_chunk_boundaries(cap, expected):
    assert shape(("甲乙丙丁戊", turn(), True), cap=cap) == expected


def test_a_stop_string_cuts_and_counts_only_what_is_shown():
    assert shape(("甲乙丙丁戊", turn(), True), stop=["丁"]) == (["甲乙丙"], "甲乙丙", 4, False, True)
    assert shape(("。甲", turn("Final Answer: 。甲", [(15, 1), (16, 2)]), True), stop=["。"]) == \
        ([], "", 0, False, True)  # a stop string at the very start: an empty answer of 0 tokens


def test_the_tail_that_may_start_a_stop_string_is_held_back_until_final():
    assert shape(("甲乙丙E", turn(), False), ("甲乙丙丁戊", turn(), True), stop=["END"]) == \
        (["甲乙", "丙丁戊"], "甲乙丙丁戊", 5, False, True)
    assert shape(("甲乙丙E", turn(), True), stop=["END"])[0] == ["甲乙丙E"]  # final: nothing held back


def test_tokens_start_at_the_answer_in_the_turn():
    assert shape(("甲乙丙", StreamedTurn("甲乙丙", marks=[(1, 1), (3, 3)]), True))[2] == 3
    assert shape(("乙丙", StreamedTurn("甲乙丙", marks=[(1, 1), (3, 3)]), True))[2] == 2
    assert shape(("甲乙丙", StreamedTurn("甲乙丙", completion_tokens=5), True))[2] == 5  # no marks: the turn's count


def test_the_tiers_own_cap_is_also_length():
    cut = StreamedTurn("甲乙", finish_reason="length", marks=[(2, 2)])
    assert shape(("甲乙", cut, True)) == (["甲乙"], "甲乙", 2, True, True)
    assert shape(("甲乙", cut, False)) == (["甲乙"], "甲乙", 2, False, False)


def test_only_growth_of_the_same_answer_is_emitted_and_nothing_after_the_end():
    deltas, shown, *_ = shape(("甲乙丙丁", turn(), False), ("甲乙丙丁", turn(), False), ("戊己庚辛壬", turn(), False),
                              ("甲乙丙丁戊", turn(), True), ("甲乙丙丁戊更多", turn(), True))
    assert deltas == ["甲乙丙丁", "戊"] and shown == "甲乙丙丁戊"


class CharTokenizer:
    """A Tokenizer (answer_shaper.Tokenizer) of one token per character, like LLMClient's fallback."""

    async def truncate_to_tokens(self, text: str, cap: int) -> tuple[str, int]:
        return text[:cap], len(text[:cap])


async def test_a_whole_answer_and_a_note_share_the_cap_and_the_stops():
    deltas: list[str] = []
    shaper = AnswerShaper(GenerationOptions(stop=["。"], max_tokens=6), lambda d: deltas.append(d.text))
    assert await shaper.whole("甲乙丙丁", CharTokenizer()) == "甲乙丙丁"
    assert (shaper.tokens, shaper.truncated, deltas) == (4, False, [])  # the caller emits a whole answer
    assert await shaper.append("戊己庚", CharTokenizer()) == "戊己"  # what is left of the cap: 2 tokens
    assert (shaper.tokens, shaper.truncated, deltas) == (6, True, ["戊己"])
    assert await shaper.append("辛", CharTokenizer()) == ""  # no room left: nothing, nothing emitted
    stopped = AnswerShaper(GenerationOptions(stop=["。"]), lambda d: deltas.append(d.text))
    assert await stopped.whole("甲乙。丙", CharTokenizer()) == "甲乙" and stopped.stopped and not stopped.truncated
    assert await stopped.append("\n\n。注", CharTokenizer()) == ""  # only blank before the stop: no note


def test_a_new_shaper_has_shown_nothing():
    shaper = AnswerShaper(GenerationOptions(), lambda d: None)
    assert (shaper.shown, shaper.tokens, shaper.truncated, shaper.ended, shaper.stopped, shaper.capped) == (
        "", 0, False, False, False, False)
    assert shaper.capped is False and shaper.tokens == 0

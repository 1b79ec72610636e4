"""The answer-level grounding checker (react_tier/grounding.py) on supported, unsupported and uncited sentences.
The passages are real knowledge-base texts (隋书 卷二 with its translation, a poem record)."""

from __future__ import annotations

import pytest

from react_tier.grounding import check_grounding, check_sentences
from react_tier.results import Grounding

WENDI_DEATH = ("甲辰，上以疾甚，卧于仁寿宫，与百僚辞诀，并握手歔欷。丁未，崩于大宝殿，时年六十四。\n"
               "【译文】十三日，高祖病重，卧床于仁寿宫，同百官辞别，并握手叹息。十六日，高祖在大宝殿逝世，时年六十四岁。")
POEM = "《昔昔盐》 隋·薛道衡\n垂柳覆金堤，蘼芜叶复齐。水溢芙蓉沼，花飞桃李蹊。暗牖悬蛛网，空梁落燕泥。"
CITED = {"suishu:卷2:40": WENDI_DEATH, "poem:sui#61": POEM}


def test_a_faithful_cited_answer_is_fully_grounded():
    answer = ("隋文帝在仁寿宫病重，十六日在大宝殿逝世，时年六十四岁。[suishu:卷2:40]\n"
              "“空梁落燕泥”出自薛道衡的《昔昔盐》。[poem:sui#61]")
    report = check_grounding(answer, CITED)
    assert isinstance(report, Grounding)
    assert report.claims == 2 and report.score == 1.0 and report.flagged == []
    assert all(s.support >= 0.6 for s in check_sentences(answer, CITED))


def test_an_invented_sentence_is_flagged_unsupported_even_when_it_cites():
    report = check_grounding("隋文帝在大宝殿逝世，时年六十四岁[suishu:卷2:40]。"
                             "他临终前把皇位传给了秦王杨俊，并下令修建长城。[suishu:卷2:40]", CITED)
    assert report.claims == 2 and report.score == 0.5
    [flagged] = report.flagged
    assert flagged.reason == "unsupported" and "杨俊" in flagged.text and flagged.support < 0.3


def test_a_sentence_without_any_citation_is_flagged_uncited():
    report = check_grounding("隋文帝在大宝殿逝世，时年六十四岁。", CITED)
    assert report.score == 0.0 and [s.reason for s in report.flagged] == ["uncited"]


def test_a_citation_the_agent_never_observed_does_not_count():
    report = check_grounding("隋文帝在大宝殿逝世，时年六十四岁。[zztj:卷180:3]", CITED)
    assert report.score == 0.0 and report.flagged[0].reason == "unknown-citation"
    assert report.unknown_ids == ["zztj:卷180:3"]


def test_a_trailing_citation_covers_the_sentences_before_it_in_its_paragraph():
    answer = "高祖病重，卧床于仁寿宫。在大宝殿逝世，时年六十四岁。[suishu:卷2:40]\n垂柳覆金堤，蘼芜叶复齐。"
    report = check_grounding(answer, CITED)
    assert [s.citations for s in check_sentences(answer, CITED)] == [["suishu:卷2:40"]] * 2 + [[]]
    assert report.claims == 3 and [s.reason for s in report.flagged] == ["uncited"]  # other paragraph
    assert report.score == 0.667  # 2 / 3, rounded as it goes out


def test_traditional_characters_and_other_brackets_are_normalised():
    report = check_grounding("隋文帝在大寶殿逝世，時年六十四歲。【suishu:卷2:40】", CITED)
    assert report.score == 1.0, report


def test_the_cited_passage_must_hold_the_claim_not_another_one():
    # true, but the cited passage (the poem) does not say it
    report = check_grounding("隋文帝在大宝殿逝世，时年六十四岁。[poem:sui#61]", CITED)
    assert report.score == 0.0 and report.flagged[0].reason == "unsupported"


def test_no_claims_means_nothing_to_flag():
    for answer in ("", "是的。", "[poem:sui#61]", "\n\n"):
        report = check_grounding(answer, CITED)
        assert report.claims == 0 and report.score == 1.0 and report.flagged == []
    assert check_grounding("不知道。", {}).claims == 0


def test_report_serialises_and_bad_input_is_a_type_error():
    data = check_grounding("他把皇位传给了秦王杨俊。[suishu:卷2:40]", CITED).model_dump()
    assert data["score"] == 0.0 and data["flagged"][0]["reason"] == "unsupported"
    assert set(data) == {"score", "claims", "flagged", "unknown_ids"}
    with pytest.raises(TypeError):
        check_grounding(None, CITED)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check_sentences(None, CITED)  # type: ignore[arg-type]


def test_several_ids_in_one_bracket_are_all_citations():
    answer = "隋文帝在大宝殿逝世，时年六十四岁；“空梁落燕泥”出自《昔昔盐》。[suishu:卷2:40, poem:sui#61]"
    assert check_sentences(answer, CITED)[0].citations == ["suishu:卷2:40", "poem:sui#61"]
    assert check_grounding(answer, CITED).score == 1.0
    report = check_grounding("隋文帝在大宝殿逝世。[suishu:卷2:40、zztj:卷180:3]", CITED)
    assert report.score == 1.0 and report.unknown_ids == ["zztj:卷180:3"]  # one known id supports it


def test_the_translation_mark_quoted_from_a_passage_is_text_not_a_citation():
    """Issue #25, item 4: an answer quoting the passage's own 【译文】 mark had "译文" read as a cited id
    (reason unknown-citation, and listed in unknown_ids)."""
    answer = "【译文】十六日，高祖在大宝殿逝世，时年六十四岁。[suishu:卷2:40]"
    report = check_grounding(answer, CITED)
    assert report.score == 1.0 and report.unknown_ids == []
    [sentence] = check_sentences(answer, CITED)
    assert sentence.citations == ["suishu:卷2:40"]
    assert sentence.text.startswith("【译文】")  # kept as the claim's text
    report = check_grounding("【译文】高祖在大宝殿逝世，时年六十四岁。", CITED)
    assert [s.reason for s in report.flagged] == ["uncited"] and report.unknown_ids == []
    report = check_grounding("高祖在大宝殿逝世，时年六十四岁。【注】【见上】[note: x]", CITED)
    assert report.unknown_ids == [] and report.flagged[0].reason == "uncited"


@pytest.mark.parametrize("cited_id", ["suishu:卷2:40", "poem:sui#61", "bio:杨坚", "poemgroup:从驾天池应诏",
                                      "https://example.org/sui/wendi"])
def test_every_kind_of_source_id_is_read_as_a_citation(cited_id):
    answer, cited = f"隋文帝在大宝殿逝世，时年六十四岁。【{cited_id}】", {cited_id: WENDI_DEATH}
    assert check_sentences(answer, cited)[0].citations == [cited_id]
    assert check_grounding(answer, cited).score == 1.0


def test_the_support_threshold_and_the_claim_length_are_inclusive():
    # "大宝殿逝世" against a passage that holds half of its bigrams: 大宝 宝殿 | 殿逝 逝世 -> 2 of 4
    half = {"p:1": "大宝殿"}
    assert check_sentences("大宝殿逝世。[p:1]", half)[0].support == 0.5
    assert check_grounding("大宝殿逝世。[p:1]", half).score == 1.0  # support == min_support is grounded
    assert check_grounding("大宝殿逝世。[p:1]", half, min_support=0.51).score == 0.0
    assert check_grounding("大宝殿。[p:1]", half).claims == 0  # 3 characters: not a claim
    assert check_grounding("大宝殿在。[p:1]", half).claims == 1  # 4: a claim
    assert check_grounding("大宝殿在。[p:1]", half, min_claim_chars=5).claims == 0


def test_a_claim_of_function_words_only_is_supported_by_any_citation():
    assert check_sentences("的是的是的。[p:1]", {"p:1": "无关"})[0].support == 1.0
    assert check_grounding("的是的是的。[p:1]", {"p:1": "无关"}).score == 1.0


def test_function_word_bigrams_are_left_out_only_when_both_characters_are():
    # 的是 (both function characters) never counts; 隋的 (one of them) does
    report = check_grounding("隋的是。[p:1]", {"p:1": "隋的"})
    assert report.claims == 0  # 3 content characters
    [sentence] = check_sentences("隋的是也。[p:1]", {"p:1": "隋的"})
    assert sentence.support == 1.0  # bigrams 隋的 (found); 的是, 是也 left out


def test_the_report_rounds_to_three_places():
    # 大宝 宝殿 殿逝 of which the passage holds 大宝: 1 / 3
    report = check_grounding("大宝殿逝。[p:1]", {"p:1": "大宝"})
    assert report.flagged[0].support == 0.333
    assert check_sentences("大宝殿逝。[p:1]", {"p:1": "大宝"})[0].support == 0.333
    third = check_grounding("大宝殿。[p:1]\n甲乙丙丁。\n戊己庚辛。", {"p:1": "大宝殿"})
    assert third.score == 0.0
    mixed = check_grounding("大宝殿逝世。[p:1]\n甲乙丙丁。\n戊己庚辛。", {"p:1": "大宝殿逝世"})
    assert mixed.score == 0.333 and mixed.model_dump()["score"] == 0.333
    assert mixed.claims == 3 and mixed.unknown_ids == []
    assert [f.text for f in mixed.flagged] == ["甲乙丙丁。", "戊己庚辛。"]


def test_an_earlier_citation_covers_a_later_uncited_sentence_of_its_paragraph():
    checks = check_sentences("大宝殿逝世。[p:1] 大宝殿逝世了。", {"p:1": "大宝殿逝世"})
    assert [s.citations for s in checks] == [["p:1"], ["p:1"]]
    # the next cited sentence first: a sentence between two citations takes the later one
    checks = check_sentences("甲乙丙丁[p:1]。大宝殿逝世。戊己庚辛[p:2]。", {"p:1": "甲乙丙丁", "p:2": "戊己庚辛"})
    assert [s.citations for s in checks] == [["p:1"], ["p:2"], ["p:2"]]


def test_which_earlier_citation_an_uncited_sentence_takes():
    cited = {"p:1": "甲乙丙丁大宝殿逝世戊己庚辛", "p:2": "甲乙丙丁大宝殿逝世戊己庚辛"}
    checks = check_sentences("甲乙丙丁[p:1]。大宝殿逝世。戊己庚辛。", cited)
    assert [s.citations for s in checks] == [["p:1"]] * 3  # no later one: the nearest earlier one
    assert check_sentences("甲乙丙丁[p:1]。大宝殿逝世[p:2]。戊己庚辛。", cited)[2].citations == ["p:2"]
    checks = check_sentences("甲乙丙丁。\n大宝殿逝世[p:1]。", cited)  # never across paragraphs
    assert [s.citations for s in checks] == [[], ["p:1"]]


def test_a_citation_after_the_sentence_end_joins_the_sentences_own():
    checks = check_sentences("大宝殿逝世[p:1]。[p:2]\n戊己庚辛。[p:2]", {"p:1": "大宝殿逝世", "p:2": "戊己庚辛"})
    assert [s.citations for s in checks] == [["p:1", "p:2"], ["p:2"]]
    # ids a tool returned in another form (no scheme) join the same way: the known ids decide what is a citation
    checks = check_sentences("大宝殿逝世[1]。[2]", {"1": "大宝殿逝世", "2": "戊己庚辛"})
    assert [s.citations for s in checks] == [["1", "2"]]


def test_a_short_sentence_does_not_end_the_check():
    report = check_grounding("好。大宝殿逝世[p:1]。", {"p:1": "大宝殿逝世"})
    assert report.claims == 1 and report.score == 1.0


def test_a_passage_without_text_supports_nothing():
    report = check_grounding("XXXX XXXX。[p:1]", {"p:1": None})  # type: ignore[dict-item]
    assert report.claims == 1 and report.flagged[0].support == 0.0 and report.score == 0.0


def test_the_serialised_sentence():
    report = check_grounding("大宝殿在。[p:1]", {"p:1": "大宝殿"})  # 大宝 宝殿 of 大宝 宝殿 殿在: 2/3
    [sentence] = check_sentences("大宝殿在。[p:1]", {"p:1": "大宝殿"})
    assert report.model_dump()["flagged"] == [] and sentence.model_dump() == {
        "text": "大宝殿在。", "citations": ["p:1"], "support": 0.667, "reason": None}


def test_a_non_string_answer_is_a_type_error_that_says_what_it_got():
    with pytest.raises(TypeError) as bad:
        check_grounding(["隋"], {})  # type: ignore[arg-type]
    assert str(bad.value) == "answer must be a str, got list"

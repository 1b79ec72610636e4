"""Behaviour pinned where mutation testing found it unpinned: alias expansion (longest key first, a matched span
never matched again) and query cleaning edge cases (the serving profile's cases are in tests/unit/serving/
test_config.py)."""

from __future__ import annotations

import pytest

from react_tier.knowledge.aliases import ALIASES, expand
from react_tier.knowledge.models import KnowledgeQueryError
from react_tier.knowledge.text import clean_query, split_sentences


@pytest.mark.parametrize("query, forms", [
    ("杀死", list(ALIASES["杀死"])),                       # 死 inside 杀死 is not matched again
    ("杀死、杀死、杀死", list(ALIASES["杀死"])),           # nor inside any later occurrence
    ("死于杀死", [*ALIASES["杀死"], *ALIASES["死"]]),      # a free 死 before the longer key still counts
    ("杀死、死、杀死", [*ALIASES["杀死"], *ALIASES["死"]]),  # every occurrence is visited, not just first and last
    ("隋炀帝", list(dict.fromkeys(ALIASES["隋炀帝"]))),
    ("杨坚死后杨坚", list(dict.fromkeys([*ALIASES["杨坚"], *ALIASES["死"]]))),
    ("今天天气", list(ALIASES["天气"])), ("你好", []), ("abc", []),
])
def test_alias_expansion_is_exact(query, forms):
    assert expand(query) == forms


def test_the_longer_key_is_preferred_for_overlapping_keys():
    assert not set(ALIASES["死"]) <= set(ALIASES["杀死"])  # the cases above can tell them apart
    assert expand("文帝") == list(ALIASES["文帝"]) and expand("隋文帝") == list(ALIASES["隋文帝"])


def test_split_sentences_drops_blank_pieces():
    assert split_sentences("高祖崩。\n\n  \n时年六十四！") == ["高祖崩。", "时年六十四！"]


def test_bytes_queries_are_decoded_as_utf8_with_replacement():
    assert clean_query("隋炀帝".encode(), 100) == "隋炀帝"
    assert clean_query(b"\xff\xfe\xe9\x9a\x8b", 100) == "\ufffd\ufffd隋"


def test_a_non_text_query_names_its_type():
    with pytest.raises(KnowledgeQueryError, match="^query must be text, got int$"):
        clean_query(5, 100)


def test_word_tokenizer_exact_words():
    from react_tier.knowledge.text import QUERY_STOPWORDS, WordTokenizer

    plain, extra = WordTokenizer(), WordTokenizer(("杨师道",))
    # no HMM: unknown names stay single characters instead of invented words (杨师, 唐尚)
    assert plain.words("杨师道入唐尚桂阳公主") == ["杨", "师", "道", "入", "唐", "尚", "桂阳", "公主"]
    assert plain.query_words("杨师道入唐尚桂阳公主") == ["杨", "师", "道", "入", "唐", "尚", "桂阳", "公主"]
    assert extra.words("杨师道入唐") == ["师道", "杨师道", "入", "唐"]
    assert plain._sub_words("中华人民共和国") == ["中华", "华人", "人民", "共和", "共和国"]
    assert plain._sub_words("大运河") == ["大运", "运河"] and plain._sub_words("运河") == []
    assert plain._sub_words("一个人") == ["一个", "个人"] and plain._sub_words("一个人", QUERY_STOPWORDS) == ["个人"]
    # a query word's sub-words leave out the query stopwords (一个, 一年), the passage words keep them
    assert plain.query_words("隋朝的第一个皇帝") == ["第一", "第一个", "皇帝"]
    assert plain.query_words("开皇十一年") == ["开皇", "十一", "十一年"]
    assert plain.words("开皇十一年") == ["开皇", "十一", "一年", "十一年"]


def test_query_length_boundary_and_messages():
    assert clean_query("隋" * 10, 10) == "隋" * 10
    for raw, message in (("隋" * 11, "query too long: 11 characters (limit 10)"),
                         ("  \x00 ", "empty query: give a question or keywords"),
                         ("。，", "query has no searchable characters (Chinese, letters or digits)")):
        with pytest.raises(KnowledgeQueryError) as info:
            clean_query(raw, 10)
        assert str(info.value) == message

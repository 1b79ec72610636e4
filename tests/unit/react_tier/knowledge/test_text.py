"""Unit tests of the knowledge base's pure parts (text handling, alias table, windows, poem matching)."""

from __future__ import annotations

import itertools

import pytest

from react_tier.knowledge import KnowledgeQueryError, Passage, Poem
from react_tier.knowledge.aliases import ALIASES, expand
from react_tier.knowledge.corpus import _align_translations, _paragraph_heading, _windows
from react_tier.knowledge.poems import PoemIndex
from react_tier.knowledge.text import (
    VARIANT_FOLDS,
    char_bigrams,
    clean_query,
    compact,
    fold_variants,
    search_form,
    split_sentences,
    to_simplified,
)


def test_traditional_is_normalised_to_simplified():
    assert to_simplified("隋煬帝東征高麗") == "隋炀帝东征高丽"
    assert to_simplified("隋炀帝") == "隋炀帝"


def test_variant_characters_fold_to_the_standard_form():
    # OpenCC keeps these 异体字; the 资治通鉴 writes 张须陁 / 阎毘 where the 隋书 writes 张须陀 / 阎毗
    assert to_simplified("張須陁") == "张须陁" and search_form("張須陁") == "张须陀"
    assert search_form("閻毘") == "阎毗" and search_form("巗") == "岩"  # also OpenCC's rare output 𪨷
    assert clean_query("张须陁", 100) == "张须陀"
    assert fold_variants("隋炀帝营建东都") == "隋炀帝营建东都"
    for source, target in VARIANT_FOLDS.items():  # every target is a fixed point: folding is idempotent
        assert search_form(target) == target, (chr(source), target)
        assert chr(source) not in VARIANT_FOLDS.values()


@pytest.mark.parametrize("raw, message", [
    ("", "empty"), ("   \n\t ", "empty"), ("\x00\x01\x02", "empty"),
    ("\x00\xff\xfe\x80" * 10, "no searchable"), ("？！。，", "no searchable"),
    ("隋" * 10_000, "too long"), (None, "must be text"), (42, "must be text"),
])
def test_bad_queries_raise_a_clear_error(raw, message):
    with pytest.raises(KnowledgeQueryError, match=message):
        clean_query(raw, max_chars=1000)


def test_query_error_is_a_value_error_and_a_suiqa_error():
    from suiqa.errors import SuiqaError

    assert issubclass(KnowledgeQueryError, ValueError) and issubclass(KnowledgeQueryError, SuiqaError)


def test_clean_query_strips_control_characters_and_converts():
    assert clean_query(" 隋煬帝\x00\x07 ", 100) == "隋炀帝"
    assert clean_query("隋文帝".encode(), 100) == "隋文帝"


def test_sentences_and_bigrams():
    assert split_sentences("高祖崩。时年六十四！\n史臣曰") == ["高祖崩。", "时年六十四！", "史臣曰"]
    assert char_bigrams("隋文帝，崩") == ["隋文", "文帝", "崩"]
    assert compact("空梁，落燕泥。 ") == "空梁落燕泥"


def test_aliases_map_modern_words_to_classical_forms():
    forms = expand("隋文帝是哪一年去世的")
    assert "高祖" in forms and "崩" in forms
    # the longest key wins: 隋炀帝 is not also read as 炀帝 + 帝
    assert expand("隋炀帝") == list(dict.fromkeys(("炀帝", "杨广", "讳广")))
    assert expand("今天天气") == list(ALIASES["天气"]) and expand("abc") == []


def test_passage_words_include_sub_words_like_query_words():
    from react_tier.knowledge.text import WordTokenizer

    tokenizer = WordTokenizer()
    words = tokenizer.words("《从军行》 隋·卢思道")
    assert "从军行" in words and "从军" in words  # a question's 从军 meets the title
    assert "从军" in tokenizer.query_words("卢思道写过哪些从军题材的诗")
    assert "是" not in tokenizer.query_words("他是谁")


def test_windows_cover_every_sentence_and_overlap():
    lengths = [30] * 20
    ranges = _windows(lengths, window_chars=90, stride_chars=45)
    covered = {i for start, end in ranges for i in range(start, end)}
    assert covered == set(range(20))
    assert all(b[0] < a[1] for a, b in itertools.pairwise(ranges))  # consecutive windows overlap
    assert _windows([500], 90, 45) == [(0, 1)]


def test_translations_attach_to_their_sentences_even_when_shifted():
    sentences = ["高祖崩于大宝殿。", "时年六十四。", "史臣曰。"]
    pairs = [{"classical": "高祖崩于大宝殿。", "modern": "高祖在大宝殿去世。"},
             {"classical": "（对不上的句子）", "modern": "对不上。"},
             {"classical": "时年六十四", "modern": "终年六十四岁。"}]
    assert _align_translations(sentences, pairs) == [["高祖在大宝殿去世。", "对不上。"], ["终年六十四岁。"], []]


def test_headings():
    assert (_paragraph_heading("高祖文皇帝上之上开皇九年（己酉，公元五八九年）", "zztj")
            == "开皇九年（己酉，公元五八九年）")
    assert _paragraph_heading("高颎，字昭玄，一名敏，自云渤海蓚人也。", "suishu") == "高颎"
    assert _paragraph_heading("○谯国夫人 谯国夫人者，高凉洗氏之女也。", "suishu") == "谯国夫人"
    assert _paragraph_heading("春，正月，乙丑朔，陈主朝会群臣。", "zztj") is None


POEMS = [Poem("poem:sui#61", "昔昔盐", "薛道衡", "垂柳覆金堤，蘼芜叶复齐。暗牖悬蛛网，空梁落燕泥。", "隋"),
         Poem("poem:sui#780", "春江花月夜二首 其一", "杨广", "暮江平不动，春花满正开。流波将月去，潮水带星来。", "隋")]


def test_poem_index_exact_fuzzy_title_author():
    index = PoemIndex(POEMS)
    assert [p.id for p in index.lookup("空梁落燕泥", None, None, 5)] == ["poem:sui#61"]
    assert [p.id for p in index.lookup("空梁落燕子", None, None, 5)] == ["poem:sui#61"]  # one wrong character
    assert [p.id for p in index.lookup(None, "春江花月夜", None, 5)] == ["poem:sui#780"]
    assert [p.id for p in index.lookup(None, None, "隋炀帝", 5)] == ["poem:sui#780"]
    assert index.lookup("空梁落燕泥", None, "杨广", 5) == []
    assert index.lookup("完全无关的句子内容", None, None, 5) == []


def test_records_serialise_to_the_fixed_cli_format():
    assert set(Passage("a", "suishu", "t", "x", 1.23456).to_dict()) == {"id", "source", "title", "text", "score"}
    assert set(POEMS[0].to_dict()) == {"id", "title", "author", "content"}


def test_package_import_is_light():
    import subprocess
    import sys

    code = ("import sys, react_tier.knowledge as k; "
            "heavy = [m for m in ('torch', 'vllm', 'ray', 'openai', 'jieba', 'bm25s') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _diversifier(overlaps_next: list[bool], **settings):
    """A KnowledgeBase with only what the diversity step reads (test double: no index is loaded)."""
    from react_tier.knowledge import KnowledgeBase, KnowledgeSettings

    kb = object.__new__(KnowledgeBase)
    kb.settings = KnowledgeSettings(**settings)
    kb._overlaps_next = overlaps_next
    return kb._diversified


def test_overlapping_windows_are_demoted_by_a_few_places_not_dropped():
    # positions 0-1-2 are consecutive overlapping windows of one juan; 3..9 are other passages
    overlaps_next = [True, True, False] + [False] * 7
    ranked = [0, 1, 3, 4, 5, 6, 2, 7, 8, 9]
    assert _diversifier(overlaps_next, overlap_min_distance=4)(ranked, 10) == [0, 3, 4, 5, 1, 6, 7, 8, 2, 9]
    assert _diversifier(overlaps_next, overlap_min_distance=2)(ranked, 10) == [0, 3, 1, 4, 5, 6, 2, 7, 8, 9]
    # a distance beyond k: an overlapping window only fills the places left after every other passage
    assert _diversifier(overlaps_next, overlap_min_distance=10_000)(ranked, 10) == [0, 3, 4, 5, 6, 2, 7, 8, 9, 1]
    assert _diversifier(overlaps_next, overlap_min_distance=10_000)(ranked, 5) == [0, 3, 4, 5, 6]
    # off, or a distance of 1: the plain ranking
    assert _diversifier(overlaps_next, skip_overlapping=False)(ranked, 10) == ranked
    assert _diversifier(overlaps_next, overlap_min_distance=1)(ranked, 4) == ranked[:4]


def test_plain_words_keep_unknown_names_in_single_characters():
    """Without jieba's HMM guesser: a name it does not know (来护儿) is not glued into false words (来护 / 儿率)."""
    from react_tier.knowledge.index import jieba_extra_words
    from react_tier.knowledge.text import WordTokenizer

    assert WordTokenizer(jieba_extra_words()).plain_words("来护儿率水军渡海") == [
        "来", "护", "儿", "率", "水军", "渡海"]

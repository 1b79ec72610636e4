"""The search fusion of react_tier/knowledge/base.py on a real index: the tiny data set of tests/unit/kb_tiny.py
built by the real builder (jieba, bm25s, the lexicon), about 2 s once per session.

The fused scores are checked against an oracle made from the two BM25 indexes' own scores (bm25s' public
``get_scores``): each ranking = the passages with a positive BM25 score (query tokens + weight x each expansion
token), best first, cut at ``fusion_depth``; a passage's fused score = sum over rankings of weight / (rrf_k + rank)
with rank counted from 1 (word ranking 1.0, character ranking ``bigram_weight``, the structured poem route
1 + bigram_weight + 0.01).
"""

from __future__ import annotations

import itertools
import os
import shutil

import numpy as np
import pytest

from react_tier.knowledge import KnowledgeBase, KnowledgeQueryError
from react_tier.knowledge.lexicon import Lexicon
from tests.unit.kb_tiny import tiny_settings, write_data

# the plain fused ranking: no decomposition, no diversity step, no structured route, no coverage re-rank
PLAIN = {"decompose": False, "skip_overlapping": False, "use_poem_groups": False, "coverage_weight": 0.0}


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kb_tiny")
    write_data(root / "data")
    KnowledgeBase.load(tiny_settings(root))
    return root


@pytest.fixture(scope="session")
def make_kb(tiny_root):
    """The KnowledgeBase over the built tiny index, with these (query-time) settings. Loading costs ~0.7 s (jieba's
    dictionary), so the variants share one loaded index: a search reads its settings when it runs; only the
    window sizes (which windows overlap) are read at load, and ``load_kb`` gives those a fresh load."""
    import copy

    base = KnowledgeBase.load(tiny_settings(tiny_root))

    def make(**overrides) -> KnowledgeBase:
        kb = copy.copy(base)
        kb.settings = tiny_settings(tiny_root, **overrides)
        return kb

    return make


@pytest.fixture(scope="session")
def bm25(make_kb):
    import bm25s

    index_dir = make_kb().index_dir
    return {name: bm25s.BM25.load(str(index_dir / name), show_progress=False) for name in ("word", "char")}


def _bm25_ranking(retriever, tokens, extra, depth) -> list[int]:
    n = retriever.scores["num_docs"]
    scores = np.zeros(n, dtype=np.float64)
    known = [t for t in tokens if t in retriever.vocab_dict]
    if known:
        scores += retriever.get_scores(known)
    for token, weight in extra:
        if token in retriever.vocab_dict and weight > 0:
            scores += weight * retriever.get_scores([token])
    ranked = sorted((p for p in range(n) if scores[p] > 0), key=lambda p: (-scores[p], p))
    return ranked[:depth]


def _oracle(kb, bm25, query, structured=()) -> dict[str, float]:
    """{passage id: fused score} of one (clean) query."""
    s = kb.settings
    words, chars, extra_words, extra_chars = kb.query_tokens(query)
    rankings = [(_bm25_ranking(bm25["word"], words, extra_words, s.fusion_depth), 1.0),
                (_bm25_ranking(bm25["char"], chars, extra_chars, s.fusion_depth), s.bigram_weight)]
    if structured:
        rankings.append(([kb._position[i] for i in structured], 1.0 + s.bigram_weight + 0.01))
    fused: dict[int, float] = {}
    for ranking, weight in rankings:
        for rank, position in enumerate(ranking, start=1):
            fused[position] = fused.get(position, 0.0) + weight / (s.rrf_k + rank)
    return {kb._records[p]["id"]: v
            for p, v in sorted(fused.items(), key=lambda item: (-item[1], item[0]))}


def _ids_scores(passages) -> list[tuple[str, float]]:
    return [(p.id, round(p.score, 9)) for p in passages]


def _expected(fused: dict[str, float], k: int) -> list[tuple[str, float]]:
    return [(i, round(v, 9)) for i, v in list(fused.items())[:k]]


QUERIES = ["隋文帝是哪一年去世的", "韩擒虎", "开通济渠", "陈后主躲到了哪里", "薛道衡的诗"]
VARIANTS = [{}, {"rrf_k": 5, "bigram_weight": 2.0, "fusion_depth": 10, "alias_weight": 0.5},
            {"rrf_k": 60, "bigram_weight": 0.0, "alias_weight": 0.0}]


# ------------------------------------------------------------------ the index itself
def test_the_tiny_index_holds_every_kind_of_passage(make_kb):
    kb = make_kb()
    assert len(kb) == kb.manifest["passages"] == 26
    assert {kb.get(i).source for i in ("suishu:卷1:2", "zztj:卷177:2", "bio:薛道衡", "poem:sui#61",
                                       "poemgroup:读曲歌")} == {"suishu", "zztj", "bio", "poem", "poemgroup"}
    p = kb.get("suishu:卷1:2")
    assert (p.title, p.score) == ("隋书·帝纪卷一 高祖上", 0.0) and "高祖崩于大宝殿" in p.text
    assert kb.get("suishu:卷1:99") is None and kb.get(None) is None and kb.get(12) is None


@pytest.mark.parametrize("k", [0, -1, 101, True, "3", 2.0, None])
def test_a_bad_k_is_refused(make_kb, k):
    kb = make_kb()
    for call in (lambda: kb.search("隋", k), lambda: kb.search_many(["隋"], k), lambda: kb.lookup_poem(text="春", k=k)):
        with pytest.raises(KnowledgeQueryError, match="k must be an integer from 1 to 100"):
            call()


def test_k_is_bounded_by_max_k_and_one_is_the_smallest(make_kb):
    kb = make_kb(max_k=3)
    assert len(kb.search("隋", 3)) == 3 and len(kb.search("隋", 1)) == 1
    with pytest.raises(KnowledgeQueryError, match="from 1 to 3"):
        kb.search("隋", 4)


# ------------------------------------------------------------------ fusion
@pytest.mark.parametrize("variant", VARIANTS, ids=["default", "k5-bigram2-depth10", "k60-words-only"])
@pytest.mark.parametrize("query", QUERIES)
def test_search_scores_are_the_weighted_reciprocal_rank_fusion_of_both_bm25_rankings(make_kb, bm25, query, variant):
    kb = make_kb(**PLAIN, **variant)
    fused = _oracle(kb, bm25, query)
    assert fused, query
    assert _ids_scores(kb.search(query, 100)) == _expected(fused, 100)
    assert _ids_scores(kb.search(query, 3)) == _expected(fused, 3)


def test_a_passage_first_in_both_rankings_scores_their_weights_over_k_plus_one(make_kb):
    kb = make_kb(**PLAIN)
    top = kb.search("韩擒虎", 1)[0]
    assert (top.id, top.score) == ("suishu:卷52:0", pytest.approx((1.0 + 0.7) / 31))
    top = make_kb(**PLAIN, rrf_k=9, bigram_weight=0.5).search("韩擒虎", 1)[0]
    assert top.score == pytest.approx(1.5 / 10)


def test_fusion_depth_cuts_each_ranking(make_kb, bm25):
    deep, shallow = make_kb(**PLAIN), make_kb(**PLAIN, fusion_depth=10)
    query = "隋文帝是哪一年去世的"
    assert len(deep.search(query, 100)) > 10  # more than 10 passages match, so the cut matters
    assert len(shallow.search(query, 100)) <= 20
    assert {p.id for p in shallow.search(query, 100)} < {p.id for p in deep.search(query, 100)}


def test_a_query_with_no_indexed_token_finds_nothing(make_kb):
    kb = make_kb(**PLAIN)
    assert kb.search("Zebra", 5) == []  # searchable, but no token of it is in either index
    assert kb.search_many(["Zebra", "qwerty"], 5) == []


def test_expansions_with_zero_weight_add_nothing(make_kb, bm25):
    kb = make_kb(**PLAIN, alias_weight=0.0)
    words, chars, extra_words, _ = kb.query_tokens("隋炀帝")
    assert extra_words and all(w == 0.0 for _, w in extra_words)
    only_own = _oracle(make_kb(**PLAIN, use_aliases=False), bm25, "隋炀帝")
    assert _ids_scores(kb.search("隋炀帝", 100)) == _expected(only_own, 100)


def test_an_expansion_alone_can_find_a_passage(make_kb):
    # 擒 is only an expansion of 韩擒虎 (the alias table); 陈主 only of 陈后主
    kb = make_kb(**PLAIN)
    assert "zztj:卷177:2" in [p.id for p in kb.search("陈后主", 3)]
    assert make_kb(**PLAIN, use_aliases=False).search("陈后主", 100)[0].id != "suishu:卷52:0"


# ------------------------------------------------------------------ query tokens
def test_query_tokens_are_the_kept_words_their_characters_and_weighted_alias_forms(make_kb):
    words, chars, extra_words, extra_chars = make_kb(alias_weight=0.5).query_tokens("隋文帝是哪一年去世的？")
    assert words == ["文帝", "隋文帝", "去世"]
    assert chars == ["文", "帝", "文帝", "隋", "隋文", "去", "世", "去世"]
    assert extra_words == [("高祖", 0.5), ("杨坚", 0.5), ("讳坚", 0.5), ("崩", 0.5), ("薨", 0.5), ("卒", 0.5),
                           ("殂", 0.5)]
    # characters of the forms that the query's own characters do not hold, once each
    assert [t for t, _ in extra_chars] == ["高", "祖", "高祖", "杨", "坚", "杨坚", "讳", "讳坚", "崩", "薨", "卒", "殂"]
    assert {w for _, w in extra_chars} == {0.5}


def test_query_tokens_without_aliases_or_lexicon_are_the_query_alone(make_kb):
    tokens = make_kb(use_aliases=False).query_tokens("韩擒虎韩擒虎")
    assert (tokens.words, tokens.extra_words, tokens.extra_chars) == (["擒虎", "韩擒虎"], [], [])
    assert tokens.chars == ["擒", "虎", "擒虎", "韩", "韩擒"]


def test_an_alias_form_the_query_already_says_is_not_added_again(make_kb):
    words, _, extra_words, _ = make_kb().query_tokens("杨广是炀帝")
    assert "炀帝" in words and "杨广" in words
    assert "炀帝" not in dict(extra_words) and "杨广" not in dict(extra_words)
    assert dict(extra_words) == {"讳广": 1.0, "晋王": 1.0}


def _with_lexicon(kb, entries):
    """The same index with another learned lexicon (Lexicon is the index's public attribute)."""
    import copy

    other = copy.copy(kb)
    other.lexicon = Lexicon(entries, {})
    return other


def test_lexicon_forms_weigh_lexicon_weight_times_their_score_and_leave_mapped_words_to_the_table(make_kb):
    entries = {"通济渠": [("汴渠", 0.5)], "去世": [("终", 0.9)], "隋文帝": [("文皇帝", 0.8)], "开": [("凿", 0.1)]}
    kb = _with_lexicon(make_kb(lexicon_weight=2.0), entries)
    words, chars, extra_words, extra_chars = kb.query_tokens("开通济渠")
    assert words == ["开", "通济", "通济渠"]
    assert extra_words == [("汴渠", 1.0)]  # 2.0 x 0.5; 凿 is a weak single-character form (< 0.2)
    assert extra_chars == [("汴", 1.0), ("汴渠", 1.0)]  # 渠 is the query's own
    # 隋文帝 and 去世 are in the alias table: their lexicon forms are not used
    _, _, extra_words, _ = kb.query_tokens("隋文帝去世")
    assert "终" not in dict(extra_words) and "文皇帝" not in dict(extra_words)
    assert dict(extra_words)["崩"] == 1.0
    for off in (make_kb(use_lexicon=False), make_kb(lexicon_weight=0.0)):
        assert _with_lexicon(off, entries).query_tokens("开通济渠").extra_words == []


def test_an_alias_form_keeps_the_alias_weight_when_the_lexicon_also_gives_it(make_kb):
    kb = _with_lexicon(make_kb(alias_weight=0.3, lexicon_weight=5.0), {"宝殿": [("崩", 0.9)]})
    extra = dict(kb.query_tokens("隋文帝在宝殿去世").extra_words)
    assert extra["崩"] == 0.3


def test_a_character_shared_by_two_forms_keeps_the_larger_weight(make_kb):
    kb = _with_lexicon(make_kb(), {"宝殿": [("雒京", 0.9), ("京邑", 0.4)]})
    extra_chars = dict(kb.query_tokens("宝殿").extra_chars)
    assert (extra_chars["京"], extra_chars["雒"], extra_chars["邑"]) == (0.9, 0.9, 0.4)

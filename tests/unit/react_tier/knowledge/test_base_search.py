"""The search fusion of react_tier/knowledge/base.py on a real index: the tiny data set of
tests/unit/react_tier/knowledge/helpers.py built by the real builder (jieba, bm25s, the lexicon) and committed
under tests/data/kb_tiny (loading it takes ~0.7 s once per session; building it ~3 s more, which mutmut would
pay for every mutant).

The fused scores are checked against an oracle made from the two BM25 indexes' own scores (bm25s' public
``get_scores``): each ranking = the passages with a positive BM25 score (query tokens + weight x each expansion
token), best first, cut at ``fusion_depth``; a passage's fused score = sum over rankings of weight / (rrf_k + rank)
with rank counted from 1 (word ranking 1.0, character ranking ``bigram_weight``, the structured poem route
1 + bigram_weight + 0.01).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil

import numpy as np
import pytest

from react_tier.knowledge import KnowledgeBase, KnowledgeQueryError
from react_tier.knowledge.lexicon import Lexicon
from tests.unit.react_tier.knowledge.helpers import PREBUILT, tiny_settings, write_data

# the plain fused ranking: no decomposition, no diversity step, no structured route, no coverage / proximity re-rank
PLAIN = {"decompose": False, "skip_overlapping": False, "use_poem_groups": False, "coverage_weight": 0.0,
         "rerank": "off"}


_ORDER: dict[str, int] = {}


@pytest.fixture(scope="session")
def bm25(make_kb, order):
    _ORDER.update(order)
    import bm25s

    index_dir = make_kb().index_dir
    loaded = {name: bm25s.BM25.load(str(index_dir / name), show_progress=False) for name in ("word", "char", "sent")}
    return {**loaded, "owner": json.loads((index_dir / "sentence_owner.json").read_text())}


@pytest.fixture(scope="session")
def order(make_kb) -> dict[str, int]:
    """passage id -> position (the order of passages.jsonl in the index folder: the BM25 document numbers)."""
    import json

    lines = (make_kb().index_dir / "passages.jsonl").read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["id"]: i for i, line in enumerate(lines)}


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
    """{passage id: fused score} of one (clean) query, best first (ties: index order)."""
    ids = {p: i for i, p in _ORDER.items()}
    s = kb.settings
    words, chars, extra_words, extra_chars = kb.query_tokens(query)
    rankings = [(_bm25_ranking(bm25["word"], words, extra_words, s.fusion_depth), 1.0),
                (_bm25_ranking(bm25["char"], chars, extra_chars, s.fusion_depth), s.bigram_weight)]
    if s.sentence_weight > 0:  # the sentence ranking, each sentence standing for the window that owns it
        sentences = _bm25_ranking(bm25["sent"], words + chars, extra_words + extra_chars, s.fusion_depth)
        rankings.append((list(dict.fromkeys(bm25["owner"][i] for i in sentences)), s.sentence_weight))
    if structured:
        rankings.append(([_ORDER[i] for i in structured], 1.0 + s.bigram_weight + 0.01))
    fused: dict[int, float] = {}
    for ranking, weight in rankings:
        for rank, position in enumerate(ranking, start=1):
            fused[position] = fused.get(position, 0.0) + weight / (s.rrf_k + rank)
    return {ids[p]: v for p, v in sorted(fused.items(), key=lambda item: (-item[1], item[0]))}


def _ids_scores(passages) -> list[tuple[str, float]]:
    return [(p.id, round(p.score, 9)) for p in passages]


def _expected(fused: dict[str, float], k: int) -> list[tuple[str, float]]:
    return [(i, round(v, 9)) for i, v in list(fused.items())[:k]]


QUERIES = ["隋文帝是哪一年去世的", "韩擒虎", "开通济渠", "陈后主躲到了哪里", "薛道衡的诗"]
VARIANTS = [{}, {"rrf_k": 5, "bigram_weight": 2.0, "fusion_depth": 10, "alias_weight": 0.5},
            {"fusion_depth": 11}, {"fusion_depth": 13},
            {"rrf_k": 60, "bigram_weight": 0.0, "alias_weight": 0.0}, {"sentence_weight": 0.7},
            {"sentence_weight": 2.0, "bigram_weight": 0.0}]


# ------------------------------------------------------------------ the index itself
def test_the_committed_tiny_index_is_current(tmp_path):
    """tests/data/kb_tiny is helpers.py's data and the index the builder makes of it today; if this fails, run
    ``python -m tests.unit.react_tier.knowledge.helpers`` and commit tests/data/kb_tiny."""
    from react_tier.knowledge.index import cache_key

    write_data(tmp_path / "data")
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (PREBUILT / path.relative_to(tmp_path)).read_bytes(), path
    key, _ = cache_key(tiny_settings(PREBUILT), PREBUILT / "data")
    assert [p.name for p in (PREBUILT / "kb").iterdir()] == [key]


def test_the_tiny_index_holds_every_kind_of_passage(make_kb):
    kb = make_kb()
    assert len(kb) == kb.manifest["passages"] == 26
    assert {kb.get(i).source for i in ("suishu:卷1:2", "zztj:卷177:2", "bio:薛道衡", "poem:sui#61",
                                       "poemgroup:读曲歌")} == {"suishu", "zztj", "bio", "poem", "poemgroup"}
    p = kb.get("suishu:卷1:2")
    assert (p.title, p.score) == ("隋书·帝纪卷一 高祖上", 0.0) and "高祖崩于大宝殿" in p.text
    assert kb.get("suishu:卷1:99") is None and kb.get(None) is None and kb.get(12) is None
    assert kb.get(["suishu:卷1:2"]) is None  # not an id (nor hashable)


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
@pytest.mark.parametrize("variant", VARIANTS, ids=["default", "k5-bigram2-depth10", "depth11", "depth13",
                                                  "k60-words-only", "sentences", "words-sentences"])
@pytest.mark.parametrize("query", QUERIES)
def test_search_scores_are_the_weighted_reciprocal_rank_fusion_of_both_bm25_rankings(make_kb, bm25, query, variant):
    kb = make_kb(**PLAIN, **variant)
    fused = _oracle(kb, bm25, query)
    assert fused, query
    # every passage with its score (passages with equal BM25 scores may come in either order) ...
    assert sorted(_ids_scores(kb.search(query, 100))) == sorted(_expected(fused, 100))
    # ... and the best ones in order
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


def test_alias_forms_alone_rank_the_words_when_no_word_of_the_query_is_indexed(make_kb, bm25):
    # 杨坚: the histories write 高祖 / 讳坚 / 隋国公; no passage has the word 杨坚
    kb = make_kb(**PLAIN)
    words, _, extra_words, _ = kb.query_tokens("杨坚")
    assert not [w for w in words if w in bm25["word"].vocab_dict] and extra_words
    ranked = _bm25_ranking(bm25["word"], words, extra_words, 200)
    assert ranked[:1] == [0]  # suishu:卷1:0 (高祖, 讳坚, 隋国公)
    fused = _oracle(kb, bm25, "杨坚")
    assert _ids_scores(kb.search("杨坚", 2)) == _expected(fused, 2)
    assert _ids_scores(make_kb(**PLAIN, bigram_weight=0.0).search("杨坚", 2)) == _expected(
        _oracle(make_kb(**PLAIN, bigram_weight=0.0), bm25, "杨坚"), 2)


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


# ------------------------------------------------------------------ the structured poem route
@pytest.mark.parametrize(("query", "first"), [
    ("读曲歌一共有几首？", ["poemgroup:读曲歌"]),  # a counting question that names a group
    ("春江花月夜一共几首", ["poemgroup:春江花月夜二首"]),  # by the group's short name
    ("出塞二首一共有几首", ["poemgroup:出塞二首"]),  # by its full title
    ("《出塞》一共有几首", ["poemgroup:出塞二首"]),  # a two-character name counts only inside 《》
    ("出塞一共有几首", []),
    ("《读曲歌》一共有几首", ["poemgroup:读曲歌"]),  # the group, not the poems of the title
    ("《读曲歌》的第一句是什么", ["poem:sui#1", "poem:sui#2", "poem:sui#3"]),  # no counting: the titled poems
    ("《春江花月夜》是谁写的", ["poem:sui#780", "poem:sui#781"]),
    ("《昔昔盐》的作者是谁", ["poem:sui#61"]),
    ("《无此诗》的作者是谁", []),
    ("《出塞三首》一共有几首", ["poemgroup:出塞二首"]),  # a two-character name matches the name of a 《title》
    ("《昔昔盐》和出塞一共有几首", ["poem:sui#61"]),  # ... not of another title: then the titled poems
])
def test_named_groups_and_titles_outweigh_both_text_rankings(make_kb, bm25, query, first):
    kb = make_kb(**{**PLAIN, "use_poem_groups": True})
    fused = _oracle(kb, bm25, query, structured=first)
    results = kb.search(query, 100)
    assert _ids_scores(results) == _expected(fused, 100)
    assert [p.id for p in results[:len(first)]] == first
    # off: the plain fusion
    assert _ids_scores(make_kb(**PLAIN).search(query, 100)) == _expected(_oracle(kb, bm25, query), 100)


# ------------------------------------------------------------------ coverage re-rank
CONCEPTS = {"韩擒虎去世时年多少": [("韩擒虎", "擒虎", "擒"), ("去世", "崩", "薨", "卒", "殂"), ("时年",)],
            "韩擒虎和陈后主分别在哪里": [("韩擒虎", "擒虎", "擒"), ("陈后主", "陈主", "叔宝", "长城公")]}


def _covered(passage, concepts) -> int:
    from react_tier.knowledge.text import clean_query, compact

    text = compact(clean_query(f"{passage.title} {passage.text}", 10**7))
    return sum(any(form in text for form in forms) for forms in concepts)


@pytest.mark.parametrize("query", list(CONCEPTS))
@pytest.mark.parametrize(("weight", "depth"), [(1.0, 30), (0.5, 30), (2.0, 2)])
def test_coverage_rewards_the_top_passages_by_the_share_of_concepts_they_hold(make_kb, query, weight, depth):
    plain = {p.id: p for p in make_kb(**PLAIN).search(query, 100)}
    top = list(plain)[:depth]
    rewarded = make_kb(**{**PLAIN, "coverage_weight": weight, "coverage_depth": depth}).search(query, 100)
    concepts = CONCEPTS[query]
    expected = {i: plain[i].score * (1 + weight * _covered(plain[i], concepts) / len(concepts)) if i in top
                else plain[i].score for i in plain}
    ranked = sorted(expected, key=lambda i: -expected[i])
    assert [p.id for p in rewarded] == ranked
    assert [p.score for p in rewarded] == pytest.approx(list(itertools.accumulate((expected[i] for i in ranked), min)))
    assert any(expected[i] != plain[i].score for i in top)


def test_the_passage_where_all_concepts_meet_wins(make_kb):
    query = "韩擒虎去世时年多少"
    assert make_kb(**PLAIN).search(query, 3)[2].id == "suishu:卷52:0"
    rewarded = make_kb(**{**PLAIN, "coverage_weight": 1.0}).search(query, 3)
    assert rewarded[0].id == "suishu:卷52:1"  # 擒虎 + 卒 + 时年
    assert rewarded[0].score == pytest.approx(2 * make_kb(**PLAIN).search(query, 1)[0].score)


def test_coverage_leaves_a_one_concept_question_alone(make_kb):
    for query in ("韩擒虎", "通济渠"):
        assert _ids_scores(make_kb(**{**PLAIN, "coverage_weight": 3.0}).search(query, 100)) == \
            _ids_scores(make_kb(**PLAIN).search(query, 100))


def test_coverage_counts_alias_forms_only_with_aliases_on(make_kb):
    query = "韩擒虎去世时年多少"
    on = {p.id: p.score for p in make_kb(**{**PLAIN, "coverage_weight": 1.0}).search(query, 100)}
    off_plain = {p.id: p.score for p in make_kb(**{**PLAIN, "use_aliases": False}).search(query, 100)}
    off = {p.id: p.score for p in make_kb(**{**PLAIN, "use_aliases": False, "coverage_weight": 1.0}).search(query, 100)}
    # zztj:卷177:1 names 韩擒虎 but none of 去世 / 时年 (nor, without aliases, 卒): 1 concept of 3
    assert off["zztj:卷177:1"] == pytest.approx(off_plain["zztj:卷177:1"] * (1 + 1 / 3))
    # suishu:卷52:1 holds 韩擒虎 (its title) and its translation 去世, and 时年: all three either way
    assert on["suishu:卷52:1"] / dict((p.id, p.score) for p in make_kb(**PLAIN).search(query, 100))[
        "suishu:卷52:1"] == pytest.approx(2.0)
    assert off["suishu:卷52:1"] == pytest.approx(off_plain["suishu:卷52:1"] * 2)


def test_coverage_counts_lexicon_forms_of_words_the_table_does_not_map(make_kb):
    query = "韩擒虎生病时年多少"
    entries = {"生病": [("寝疾", 0.9)]}
    plain = {p.id: p.score
             for p in _with_lexicon(make_kb(**{**PLAIN, "use_lexicon": False}), entries).search(query, 100)}
    for use_lexicon, share in ((True, 3 / 3), (False, 2 / 3)):
        kb = _with_lexicon(make_kb(**{**PLAIN, "coverage_weight": 1.0, "use_lexicon": use_lexicon,
                                       "lexicon_weight": 0.0}), entries)
        scores = {p.id: p.score for p in kb.search(query, 100)}
        assert scores["suishu:卷52:1"] == pytest.approx(plain["suishu:卷52:1"] * (1 + share))


# ------------------------------------------------------------------ diversity and the score cap
def test_an_overlapping_window_is_demoted_and_its_score_capped_at_the_one_above(make_kb):
    plain = {p.id: p.score for p in make_kb(**PLAIN).search("韩擒虎", 100)}
    assert list(plain) == ["suishu:卷52:0", "suishu:卷52:1", "zztj:卷177:1", "zztj:卷177:2"]
    diverse = make_kb(**{**PLAIN, "skip_overlapping": True, "overlap_min_distance": 2}).search("韩擒虎", 100)
    assert [p.id for p in diverse] == ["suishu:卷52:0", "zztj:卷177:1", "suishu:卷52:1", "zztj:卷177:2"]
    assert [p.score for p in diverse] == [plain["suishu:卷52:0"], plain["zztj:卷177:1"], plain["zztj:卷177:1"],
                                          plain["zztj:卷177:2"]]
    # k=2 takes the first two places of the diversified order
    assert [p.id for p in make_kb(**{**PLAIN, "skip_overlapping": True}).search("韩擒虎", 2)] == \
        ["suishu:卷52:0", "zztj:卷177:1"]


def test_windows_of_another_juan_or_a_poem_are_never_demoted(make_kb):
    query = "高祖"
    plain = [p.id for p in make_kb(**PLAIN).search(query, 6)]
    assert plain == ["suishu:卷1:0", "suishu:卷1:2", "suishu:卷1:1", "suishu:卷3:0", "zztj:卷177:0",
                     "poem:nanbeichao#7"]
    diverse = [p.id for p in make_kb(**{**PLAIN, "skip_overlapping": True}).search(query, 6)]
    # 卷1:1 overlaps 卷1:0 and 卷1:2: four places after them; 卷1:2 does not overlap 卷1:0 (not neighbours)
    assert diverse == ["suishu:卷1:0", "suishu:卷1:2", "suishu:卷3:0", "zztj:卷177:0", "poem:nanbeichao#7",
                       "suishu:卷1:1"]
    # poems side by side in the index are not windows of one juan
    assert [p.id for p in make_kb(**{**PLAIN, "skip_overlapping": True}).search("读曲歌 出塞", 100)] == \
        [p.id for p in make_kb(**PLAIN).search("读曲歌 出塞", 100)]


def test_without_overlap_between_windows_nothing_is_demoted(make_kb, tiny_root):
    # stride = window: consecutive windows share no text (read at load)
    kb = KnowledgeBase(tiny_settings(tiny_root, **{**PLAIN, "skip_overlapping": True}, window_stride_chars=40),
                       make_kb().index_dir)
    assert [p.id for p in kb.search("韩擒虎", 100)] == [p.id for p in make_kb(**PLAIN).search("韩擒虎", 100)]


# ------------------------------------------------------------------ several queries
def _plain_rankings(kb, queries) -> list[list[str]]:
    return [[p.id for p in kb.search(q, 100)] for q in queries]


def _rrf(rankings, weights, rrf_k, order) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, pid in enumerate(ranking, start=1):
            fused[pid] = fused.get(pid, 0.0) + weight / (rrf_k + rank)
    return dict(sorted(fused.items(), key=lambda item: (-item[1], order[item[0]])))


@pytest.mark.parametrize(("queries", "weights", "rrf_k"), [
    (["韩擒虎", "开通济渠"], None, 30), (["韩擒虎", "开通济渠", "陈主叔宝"], [1.0, 0.5, 2.0], 30),
    (["隋文帝去世", "韩擒虎"], [0.3, 1.0], 7)])
def test_search_many_fuses_the_queries_rankings_by_weighted_reciprocal_rank(make_kb, order, queries, weights, rrf_k):
    kb = make_kb(**PLAIN, rrf_k=rrf_k)
    fused = _rrf(_plain_rankings(kb, queries), weights or [1.0] * len(queries), rrf_k, order)
    assert _ids_scores(kb.search_many(queries, 100, quota=0, weights=weights)) == _expected(fused, 100)
    assert _ids_scores(make_kb(**PLAIN, rrf_k=rrf_k, subquery_quota=0).search_many(tuple(queries), 4,
                                                                                    weights=weights)) == \
        _expected(fused, 4)


def test_search_many_reserves_each_querys_best_passage(make_kb, order):
    kb = make_kb(**PLAIN)
    queries = ["韩擒虎", "开通济渠"]
    fused = _rrf(_plain_rankings(kb, queries), [1.0, 1.0], 30, order)
    assert list(fused)[:2] == ["zztj:卷177:1", "suishu:卷52:0"]  # both 韩擒虎 passages outrank 开通济渠's best
    results = kb.search_many(queries, 5)  # subquery_quota 1
    reserved = sorted(["suishu:卷52:0", "suishu:卷3:0"], key=lambda i: -fused[i])
    rest = [i for i in fused if i not in reserved][:3]
    assert [p.id for p in results] == reserved + rest
    assert [p.score for p in results] == pytest.approx(list(itertools.accumulate((fused[i] for i in reserved + rest),
                                                                                min)))
    assert [p.id for p in kb.search_many(queries, 2)] == reserved
    assert [p.id for p in kb.search_many(queries, 1)] == ["suishu:卷52:0"]  # no more places than k
    assert len(kb.search("隋")) == len(kb.search_many(["隋", "出塞"])) == 5  # k defaults to 5
    two_each = [p.id for p in kb.search_many(queries, 4, quota=2)]
    # a quota of 2: two places each, then the fused order (quota 0 puts 卷52:1 first)
    assert [p.id for p in kb.search_many(["隋文帝去世", "韩擒虎"], 6, quota=2)][:4] == [
        "suishu:卷52:0", "zztj:卷177:1", "suishu:卷1:2", "suishu:卷1:0"]
    assert kb.search_many(["隋文帝去世", "韩擒虎"], 6, quota=0)[0].id == "suishu:卷52:1"
    # two each, but never a window next to one reserved: 卷52:1 and 卷3:1 give way to the next ones
    assert set(two_each) == {"suishu:卷52:0", "zztj:卷177:1", "suishu:卷3:0", "poem:sui#780"}


def test_a_reserved_place_skips_a_window_overlapping_one_already_reserved(make_kb):
    kb = make_kb(**PLAIN)
    assert [p.id for p in kb.search("擒虎卒", 2)] == ["suishu:卷52:1", "suishu:卷52:0"]
    # 韩擒虎's best is 卷52:0; 擒虎卒's best, 卷52:1, overlaps it, so 擒虎卒 reserves its next one
    assert [p.id for p in kb.search_many(["韩擒虎", "擒虎卒"], 2)] == ["suishu:卷52:0", "zztj:卷177:1"]


def test_search_many_takes_each_distinct_query_once_at_its_largest_weight(make_kb):
    kb = make_kb(**PLAIN)
    once = _ids_scores(kb.search_many(["韩擒虎"], 100, weights=[3.0]))
    assert _ids_scores(kb.search_many(["韩擒虎", "韩擒虎 ", "韩擒虎"], 100, weights=[1.0, 3.0, 2.0])) == once
    assert once[0] == ("suishu:卷52:0", round(3.0 / 31, 9))


def test_search_many_top_k_is_the_start_of_a_longer_search(make_kb):
    kb = make_kb()
    queries = ["韩擒虎", "开通济渠", "陈主叔宝"]
    assert [p.id for p in kb.search_many(queries, 10)][:5] == [p.id for p in kb.search_many(queries, 5)]


@pytest.mark.parametrize(("queries", "weights", "message"), [
    ([], None, "^search_many needs a non-empty list of queries$"), ("韩擒虎", None, "non-empty list"),
    (None, None, "non-empty list"), (["韩擒虎", "开通济渠"], [1.0], "^search_many: one weight per query$"),
    (["韩擒虎"], [1.0, 2.0], "one weight per query")])
def test_search_many_refuses_bad_arguments(make_kb, queries, weights, message):
    with pytest.raises(KnowledgeQueryError, match=message):
        make_kb().search_many(queries, 5, weights=weights)


# ------------------------------------------------------------------ a question that asks several things
def test_a_multi_fact_question_is_searched_as_itself_and_its_parts(make_kb):
    question = "隋文帝是在哪座宫殿去世的？去世时多少岁？"
    kb = make_kb(subquery_weight=0.5)
    parts = kb.subqueries(question)
    assert parts == ["隋文帝是在哪座宫殿去世的", "隋文帝去世时多少岁"]
    expected = kb.search_many([question, *parts], 5, weights=[1.0, 0.5, 0.5])
    assert len(kb.search(question, 2)) == 2 and len(kb.search(question, 7)) == 7
    assert _ids_scores(kb.search(question, 5)) == _ids_scores(expected)
    assert _ids_scores(kb.search(question, 5)) != _ids_scores(kb.search_many([question, *parts], 5))
    # decomposition off: the whole question alone (its fused score, not re-ranked)
    plain = make_kb(decompose=False, rerank="off")
    assert _ids_scores(plain.search(question, 5)) != _ids_scores(expected)
    assert plain.search(question, 1)[0].score == pytest.approx(1.7 / 31)
    assert make_kb().subqueries("隋文帝是哪一年去世的？") == []


# ------------------------------------------------------------------ poems and poem groups
def test_lookup_poem_by_verse_title_or_author(make_kb):
    kb = make_kb()
    assert [p.id for p in kb.lookup_poem("暮江平不动")] == ["poem:sui#780"]
    assert [p.id for p in kb.lookup_poem(title="昔昔盐")] == ["poem:sui#61"]
    assert [p.id for p in kb.lookup_poem(author="杨广")] == ["poem:sui#780", "poem:sui#781"]
    assert [p.id for p in kb.lookup_poem(author="杨广", k=1)] == ["poem:sui#780"]
    assert [p.id for p in kb.lookup_poem(title="人日思归", author="薛道衡")] == ["poem:隋#9"]
    for bad in ({}, {"text": None, "title": None, "author": None}):
        with pytest.raises(KnowledgeQueryError, match="^lookup_poem needs a line of verse, a title or an author$"):
            kb.lookup_poem(**bad)
    with pytest.raises(KnowledgeQueryError):
        kb.lookup_poem(title="   ")
    with pytest.raises(KnowledgeQueryError):
        make_kb(max_query_chars=10).lookup_poem(title="昔" * 11)


@pytest.mark.parametrize(("title", "author", "group"), [
    ("读曲歌", None, "poemgroup:读曲歌"), ("《读曲歌》", None, "poemgroup:读曲歌"),
    (" 讀曲歌 ", None, "poemgroup:读曲歌"), ("读曲歌", "无名氏", "poemgroup:读曲歌"),
    ("读曲歌", "薛道衡", None), ("春江花月夜", "隋炀帝", "poemgroup:春江花月夜二首"),
    ("春江花月夜二首", "杨广", "poemgroup:春江花月夜二首"), ("春江花月夜", "杨坚", None),
    ("出塞", None, "poemgroup:出塞二首"), ("昔昔盐", None, None), ("出", None, None),
    ("春江花月夜", "", "poemgroup:春江花月夜二首"),  # no author given: any author
    ("读曲歌X", None, None), ("X读曲歌", None, None)])  # only 《》 and spaces are stripped
def test_poem_group_by_name_or_title_and_author(make_kb, title, author, group):
    found = make_kb().poem_group(title, author)
    assert (found and found.id) == group
    if group == "poemgroup:读曲歌":
        assert (found.count, [m[1] for m in found.members]) == (3, ["poem:sui#1", "poem:sui#2", "poem:sui#3"])


# ------------------------------------------------------------------ loading and building
def test_load_builds_once_quietly_then_reuses_the_index_and_force_rebuilds_it(tiny_root, tmp_path, caplog, capfd):
    import hashlib
    import logging

    from react_tier.knowledge.corpus import DATA_FILES

    shutil.copytree(tiny_root / "data", tmp_path / "data")
    settings = tiny_settings(tmp_path)
    caplog.set_level(logging.INFO, logger="react_tier.knowledge.base")

    def builds() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("building")]

    kb = KnowledgeBase.build(settings, force=True)  # nothing to remove yet
    index_dir = kb.index_dir
    assert index_dir.parent == tmp_path / "kb" and os.listdir(tmp_path / "kb") == [index_dir.name]
    assert builds() == [f"building the knowledge base index into {index_dir}"]
    assert kb.manifest["passages"] == len(kb) == 26
    assert kb.manifest["data_files"] == {
        name: hashlib.sha256((tmp_path / "data" / name).read_bytes()).hexdigest() for name in DATA_FILES}
    marker = index_dir / "marker"
    marker.touch()
    assert KnowledgeBase.load(settings).index_dir == index_dir and KnowledgeBase.build(settings).index_dir == index_dir
    assert marker.exists() and len(builds()) == 1  # cached: not rebuilt
    kb = KnowledgeBase.build(settings, force=True)
    assert kb.index_dir == index_dir and not marker.exists() and len(builds()) == 2
    assert kb.search("韩擒虎", 1)[0].id == "suishu:卷52:0"
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # no progress bars unless asked for


def test_a_loaded_index_knows_which_windows_overlap(tiny_root, bm25, capfd):
    """A fresh load (the overlap of windows is worked out while loading): windows of one juan overlap their
    neighbours; windows of two juans, poems and groups never do."""
    import copy

    kb = KnowledgeBase.load(tiny_settings(tiny_root))
    assert capfd.readouterr() == ("", "")  # loading is quiet
    assert kb.manifest["passages"] == 26
    assert [p.id for p in kb.search("韩擒虎", 4)] == ["suishu:卷52:0", "zztj:卷177:1", "suishu:卷52:1", "zztj:卷177:2"]
    assert [p.id for p in kb.search("高祖", 6)] == ["suishu:卷1:0", "suishu:卷1:2", "suishu:卷3:0", "zztj:卷177:0",
                                                  "poem:nanbeichao#7", "suishu:卷1:1"]
    plain = copy.copy(kb)
    plain.settings = tiny_settings(tiny_root, skip_overlapping=False)
    assert [p.id for p in kb.search("读曲歌 出塞", 100)] == [p.id for p in plain.search("读曲歌 出塞", 100)]
    covering = copy.copy(kb)
    covering.settings = tiny_settings(tiny_root, coverage_weight=1.0, skip_overlapping=False)
    assert covering.search("韩擒虎去世时年多少", 1)[0].id == "suishu:卷52:1"
    # ... and the poem groups' names (longest first) and the poems' titles
    routed = copy.copy(kb)
    routed.settings = tiny_settings(tiny_root, **{**PLAIN, "use_poem_groups": True})
    for query, first in (("读曲歌和出塞二首一共有几首", ["poemgroup:出塞二首", "poemgroup:读曲歌"]),
                         ("《春江花月夜》是谁写的", ["poem:sui#780", "poem:sui#781"]),
                         ("《出塞》一共有几首", ["poemgroup:出塞二首"])):
        assert sorted(_ids_scores(routed.search(query, 100))) == sorted(
            _expected(_oracle(routed, bm25, query, structured=first), 100)), query


def test_default_dirs_come_from_suiqa_paths():
    from react_tier.knowledge import KnowledgeSettings
    from react_tier.knowledge.base import resolve_dirs
    from suiqa import paths

    assert resolve_dirs(KnowledgeSettings()) == (paths.data_dir(), paths.state_dir() / "kb")


# ------------------------------------------------------------------ windows (issue 30)
def test_every_history_sentence_is_owned_by_a_window_that_holds_it(make_kb, bm25):
    from react_tier.knowledge.text import compact

    kb = make_kb()
    owners = bm25["owner"]
    assert len(owners) == kb.manifest["sentences"] > 0
    assert owners == sorted(owners)  # the windows' own sentences, in order
    for query, needle in (("崩于大宝殿", "崩于大宝殿"), ("字子通", "字子通"), ("时年五十五", "时年五十五")):
        words, chars, extra_words, extra_chars = kb.query_tokens(query)
        first = kb._sentence_windows(words + chars, extra_words + extra_chars)[0]
        assert compact(needle) in compact(kb._records[first]["text"]), (query, kb._records[first]["id"])


def test_section_completion_reserves_each_parts_window_inside_the_questions_section(make_kb):
    question = "韩擒虎字什么，他去世时多少岁？"
    kb = make_kb(section_completion=True, section_depth=1)
    parts = kb.subqueries(question)
    assert len(parts) == 2
    whole = kb._fused(question)
    section = kb._section[max(whole, key=lambda p: (whole[p], -p))]
    assert section[0] == "suishu:卷52"
    wanted = [kb._records[kb._section_window(part, {section})]["id"] for part in parts]
    assert all(w.startswith("suishu:卷52:") for w in wanted)
    found = [p.id for p in kb.search(question, k=3)]
    assert set(wanted) <= set(found), (wanted, found)
    texts = " ".join(p.text for p in kb.search(question, k=3))
    assert "字子通" in texts and "时年五十五" in texts


@pytest.mark.parametrize("victim", ["sent", "sentence_owner.json", "word", "manifest.json"])
def test_a_missing_index_file_is_a_clear_error(tiny_root, tmp_path, victim):
    from suiqa.errors import SuiqaError

    index_dir = next((tiny_root / "kb").iterdir())
    copy_dir = tmp_path / index_dir.name
    shutil.copytree(index_dir, copy_dir)
    target = copy_dir / victim
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(SuiqaError, match=f"missing {victim}.*suiqa kb build --force"):
        KnowledgeBase(tiny_settings(tiny_root), copy_dir)


def test_an_index_of_another_format_is_a_clear_error(tiny_root, tmp_path):
    from suiqa.errors import SuiqaError

    index_dir = next((tiny_root / "kb").iterdir())
    copy_dir = tmp_path / index_dir.name
    shutil.copytree(index_dir, copy_dir)
    manifest = json.loads((copy_dir / "manifest.json").read_text())
    (copy_dir / "manifest.json").write_text(json.dumps({**manifest, "format": 10}))
    with pytest.raises(SuiqaError, match="format 10.*suiqa kb build --force"):
        KnowledgeBase(tiny_settings(tiny_root), copy_dir)

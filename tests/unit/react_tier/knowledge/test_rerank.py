"""The proximity re-rank (react_tier/knowledge/rerank.py and KnowledgeBase._rerank_proximity): the span scorer
against a brute-force oracle, and on the real tiny index (tests/data/kb_tiny) that it reorders the fused top
``rerank_depth`` by fused x (1 + weight x span score), leaves the rest alone, is deterministic, and that bad
queries still get the knowledge base's clear errors."""

from __future__ import annotations

import itertools
import random

import pytest
from pydantic import ValidationError

from react_tier.knowledge import KnowledgeQueryError, KnowledgeSettings
from react_tier.knowledge.rerank import MAX_CONCEPTS, best_span, idf, occurrences
from react_tier.knowledge.text import clean_query, compact
from tests.unit.react_tier.knowledge.test_base_search import PLAIN

PROXIMITY = {**PLAIN, "rerank": "proximity"}


# ------------------------------------------------------------------ the span scorer
def _brute_span(text, concepts, weights, span, everywhere=()) -> float:
    """Every start offset: the weight of the concepts with an occurrence starting inside [start, start+span)."""
    always = {i for i, anywhere in enumerate(everywhere) if anywhere}
    best = 0.0
    for start in range(len(text) + 1):
        inside = {i for i, forms in enumerate(concepts) if i not in always
                  for offset in occurrences(text, forms) if start <= offset < start + span}
        best = max(best, sum(weights[i] for i in inside))
    return (sum(weights[i] for i in always) + best) / sum(weights)


def test_concepts_count_only_inside_one_span():
    text = "韩擒虎少慷慨以胆略见称俄而寝疾无何卒时年五十五"
    concepts = [("擒虎",), ("卒", "崩"), ("时年",)]
    assert best_span(text, concepts, [1.0, 1.0, 1.0], span=5) == pytest.approx(2 / 3)  # 卒 + 时年
    assert best_span(text, concepts, [1.0, 1.0, 1.0], span=len(text)) == pytest.approx(1.0)
    assert best_span(text, concepts, [1.0, 3.0, 1.0], span=5) == pytest.approx(4 / 5)  # weighted
    assert best_span(text, concepts, [1.0, 1.0, 1.0], span=5, everywhere=[True]) == pytest.approx(1.0)
    assert best_span(text, [("隋",)], [1.0], span=5) == 0.0
    assert best_span(text, concepts, [0.0, 0.0, 0.0], span=5) == 0.0


def test_a_concept_counts_once_however_often_it_occurs():
    assert best_span("卒卒卒卒乙乙时年", [("卒",), ("时年",)], [1.0, 1.0], span=3) == pytest.approx(0.5)
    assert best_span("卒卒卒卒乙乙时年", [("卒",), ("时年",)], [1.0, 1.0], span=4) == pytest.approx(1.0)
    assert occurrences("卒卒卒", ("卒", "卒卒", "")) == [0, 1, 2]


@pytest.mark.parametrize("seed", range(40))
def test_the_sliding_window_equals_the_brute_force_oracle(seed):
    rng = random.Random(seed)
    text = "".join(rng.choice("甲乙丙丁戊己") for _ in range(rng.randint(0, 40)))
    concepts = [tuple(rng.choice(["甲", "乙丙", "丁", "戊己", "庚"]) for _ in range(rng.randint(1, 2)))
                for _ in range(rng.randint(1, 4))]
    weights = [rng.choice([0.5, 1.0, 2.0]) for _ in concepts]
    everywhere = [rng.random() < 0.2 for _ in concepts]
    span = rng.randint(1, 12)
    assert best_span(text, concepts, weights, span, everywhere) == pytest.approx(
        _brute_span(text, concepts, weights, span, everywhere))


def test_idf_is_bm25s_and_never_below_the_floor():
    assert idf(1, 100) > idf(10, 100) > idf(50, 100) >= 0.05
    assert idf(100, 100) == 0.05


# ------------------------------------------------------------------ on the tiny index
def _expected(kb_plain, kb, query, weight, span, depth) -> list[tuple[str, float]]:
    """The plain fused ranking with its top ``depth`` scaled by 1 + weight x span score, re-sorted."""
    plain = kb_plain.search(query, 100)
    concepts = [forms for forms in ([compact(f) for f in forms] for forms in kb._concepts(query)) if forms]
    weights = [idf(max(kb._document_frequency(f) for f in forms), len(kb)) for forms in concepts]
    if len(concepts) > MAX_CONCEPTS:  # the rarest MAX_CONCEPTS, in question order (ties: the earlier)
        keep = sorted(sorted(range(len(weights)), key=lambda i: -weights[i])[:MAX_CONCEPTS])
        concepts, weights = [concepts[i] for i in keep], [weights[i] for i in keep]
    scored = {}
    for rank, p in enumerate(plain):
        title = compact(clean_query(p.title, 10**4))
        text = compact(clean_query(f"{p.title} {p.text}", 10**7))
        score = best_span(text, concepts, weights, span, [any(f in title for f in forms) for forms in concepts])
        scored[p.id] = p.score * (1 + weight * score) if rank < depth and len(concepts) > 1 else p.score
    ranked = sorted(scored, key=lambda i: -scored[i])
    return list(zip(ranked, itertools.accumulate((scored[i] for i in ranked), min), strict=True))


QUERIES = ["韩擒虎去世时年多少", "韩擒虎和陈后主分别在哪里", "隋文帝是哪一年去世的", "陈后主躲到了哪里"]
# a long query of the tiny texts: more concepts than MAX_CONCEPTS, so only the rarest count
LONG = ("高祖文皇帝姓杨氏弘农郡华阴人汉太尉震八代孙铉仕燕为北平太守皇考从周太祖起义关西赐姓普六茹氏位至柱国"
        "大司空隋国公开皇元年二月甲子上自相府常服入宫备礼即皇帝位于临光殿韩擒虎率五百人宵济袭采石陈主叔宝投于井")


@pytest.mark.parametrize("query", [*QUERIES, LONG])
@pytest.mark.parametrize(("weight", "span", "depth"), [(2.0, 16, 50), (1.0, 4, 50), (5.0, 40, 3), (2.0, 16, 1)])
def test_the_top_depth_is_reordered_by_the_span_score(make_kb, query, weight, span, depth):
    kb = make_kb(**PROXIMITY, rerank_weight=weight, rerank_span=span, rerank_depth=depth)
    got = [(p.id, p.score) for p in kb.search(query, 100)]
    expected = _expected(make_kb(**PLAIN), kb, query, weight, span, depth)
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected])


def test_it_changes_the_order_and_only_inside_the_depth(make_kb):
    query = "韩擒虎和陈后主分别在哪里"
    plain = [p.id for p in make_kb(**PLAIN).search(query, 100)]
    reranked = [p.id for p in make_kb(**PROXIMITY, rerank_weight=2.0, rerank_span=16).search(query, 100)]
    assert reranked != plain and sorted(reranked) == sorted(plain)
    # zztj:卷177:1 says 陈主 and 韩擒虎 in one span; suishu:卷52:0 names only 韩擒虎
    assert reranked.index("zztj:卷177:1") < reranked.index("suishu:卷52:0")
    assert plain.index("zztj:卷177:1") > plain.index("suishu:卷52:0")
    shallow = make_kb(**PROXIMITY, rerank_weight=10.0, rerank_span=16, rerank_depth=2).search(query, 100)
    plain_scores = {p.id: p.score for p in make_kb(**PLAIN).search(query, 100)}
    assert [p.id for p in shallow][2:] == plain[2:]  # a boost only lifts: the untouched rest keeps its order
    assert all(p.score == plain_scores[p.id] for p in shallow[3:])


def test_off_or_zero_weight_is_the_plain_ranking(make_kb):
    for query in QUERIES:
        plain = [(p.id, p.score) for p in make_kb(**PLAIN).search(query, 100)]
        assert [(p.id, p.score) for p in make_kb(**PLAIN, rerank_weight=5.0).search(query, 100)] \
            == plain
        assert [(p.id, p.score) for p in make_kb(**PROXIMITY, rerank_weight=0.0).search(query, 100)] == plain


def test_a_long_query_counts_only_its_rarest_concepts(make_kb):
    kb = make_kb(**PROXIMITY)
    assert len(kb._concepts(LONG)) > MAX_CONCEPTS
    assert [p.id for p in kb.search(LONG, 100)] != [p.id for p in make_kb(**PLAIN).search(LONG, 100)]


def test_a_one_concept_question_is_left_alone(make_kb):
    for query in ("韩擒虎", "通济渠"):
        assert [(p.id, p.score) for p in make_kb(**PROXIMITY).search(query, 100)] == \
            [(p.id, p.score) for p in make_kb(**PLAIN).search(query, 100)]


def test_it_is_deterministic(make_kb):
    kb = make_kb(**{**PROXIMITY, "decompose": True, "skip_overlapping": True})
    for query in QUERIES + ["隋文帝是在哪座宫殿去世的？去世时多少岁？"]:
        first = [(p.id, p.score) for p in kb.search(query, 10)]
        assert first == [(p.id, p.score) for p in kb.search(query, 10)]
        assert first == [(p.id, p.score) for p in make_kb(**{**PROXIMITY, "decompose": True,
                                                             "skip_overlapping": True}).search(query, 10)]


def test_document_frequency_is_the_postings_length_of_the_word_index(make_kb):
    kb = make_kb(**PROXIMITY)
    texts = [kb._search_text(i) for i in range(len(kb))]  # title + text, as indexed
    for word in ("擒虎", "韩擒虎", "时年"):  # words of the jieba index: every passage holding them
        assert kb._document_frequency(word) == sum(word in t for t in texts) > 0
    assert kb._document_frequency("不存在的词语") == 0


@pytest.mark.parametrize(("query", "message"), [("", "empty"), ("韩" * 10_000, "too long")])
def test_bad_queries_still_get_the_clear_errors(make_kb, query, message):
    with pytest.raises(KnowledgeQueryError, match=message):
        make_kb(**PROXIMITY).search(query)


@pytest.mark.parametrize("bad", [{"rerank": "cross"}, {"rerank_depth": 0}, {"rerank_span": 1},
                                 {"rerank_weight": -1.0}])
def test_bad_rerank_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        KnowledgeSettings(**bad)

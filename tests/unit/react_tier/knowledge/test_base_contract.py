"""FakeKnowledgeBase (tests/unit/react_tier/helpers.py) against the real KnowledgeBase built from data/: the
same cases, the same answers where the double has data, the same refusals everywhere.

The real index is built once per session (12-40 s on 2 cores, cached by data hash under $SUIQA_HOME/kb), so this
module is marked slow; the double's own half of each case runs in the fast suite too (``fake`` parameter).
"""

from __future__ import annotations

import re

import pytest

from react_tier.knowledge.models import KnowledgeQueryError, Passage, Poem
from tests.unit.react_tier.helpers import PASSAGES, POEMS, FakeKnowledgeBase

# The id formats of the real index (react_tier/knowledge/corpus.py): source prefix -> id pattern.
ID_FORMATS = {"suishu": r"suishu:卷\d+:\d+", "zztj": r"zztj:卷\d+:\d+", "bio": r"bio:[^:#\s]+(#\d+)?",
              "poem": r"poem:sui#\d+"}

REFUSED_SEARCHES = [("", 5), ("   ", 5), ("\x00\x01\x02", 5), ("。，！", 5), ("隋" * 1001, 5), ("隋", 0),
                    ("隋", True), ("隋", "3"), ("隋", 101)]
REFUSED_POEM_LOOKUPS = [{}, {"title": ""}, {"author": "  "}, {"text": "春", "k": 0}]
# queries the double answers: its first hit must be a top-10 hit of the real index for the same query
ANSWERED = [("大业元年 开通济渠", "suishu:卷3:18"), ("江南造龙舟及杂船", "zztj:卷180:47")]
POEM_LOOKUPS = [({"author": "杨广"}, "poem:sui#780"), ({"title": "昔昔盐"}, "poem:sui#61"),
                ({"text": "暮江平不动"}, "poem:sui#780")]


@pytest.fixture(scope="session")
def real_kb():
    from react_tier.knowledge import KnowledgeBase, KnowledgeSettings

    return KnowledgeBase.load(KnowledgeSettings())


def _kb(kind: str, request):
    return FakeKnowledgeBase() if kind == "fake" else request.getfixturevalue("real_kb")


KINDS = ["fake", pytest.param("real", marks=pytest.mark.slow)]


def _assert_real_ids(passages: list[Passage]) -> None:
    for p in passages:
        assert isinstance(p, Passage), p
        assert p.source in ID_FORMATS and re.fullmatch(ID_FORMATS[p.source], p.id), p.id


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("query, k", REFUSED_SEARCHES)
def test_the_same_searches_are_refused(kind, request, query, k):
    with pytest.raises(KnowledgeQueryError):
        _kb(kind, request).search(query, k)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("args", REFUSED_POEM_LOOKUPS)
def test_the_same_poem_lookups_are_refused(kind, request, args):
    with pytest.raises(KnowledgeQueryError):
        _kb(kind, request).lookup_poem(**args)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("query, first", ANSWERED)
def test_search_results_have_the_real_shape(kind, request, query, first):
    kb = _kb(kind, request)
    results = kb.search(query, k=3)
    assert 1 <= len(results) <= 3
    _assert_real_ids(results)
    assert [p.score for p in results] == sorted((p.score for p in results), reverse=True)
    assert first in [p.id for p in kb.search(query, k=10)]
    assert kb.get("no-such-id") is None and kb.get("suishu:卷999:0") is None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("args, poem_id", POEM_LOOKUPS)
def test_poem_lookups_have_the_real_shape(kind, request, args, poem_id):
    poems = _kb(kind, request).lookup_poem(**args, k=5)
    assert poems and all(isinstance(p, Poem) and re.fullmatch(ID_FORMATS["poem"], p.id) for p in poems)
    assert poem_id in [p.id for p in poems]


def test_the_fake_answers_with_its_first_hit_first():
    fake = FakeKnowledgeBase()
    for query, first in ANSWERED:
        assert fake.search(query, k=1)[0].id == first


def test_the_fake_covers_every_source():
    assert {p.source for p in PASSAGES} == {"suishu", "zztj", "bio"} and POEMS
    _assert_real_ids(PASSAGES)


@pytest.mark.slow
def test_every_fake_record_is_an_excerpt_of_the_real_one(real_kb):
    for fake in PASSAGES:
        real = real_kb.get(fake.id)
        assert real is not None, fake.id
        assert (real.source, real.title) == (fake.source, fake.title)
        assert fake.text in real.text, fake.id
    for fake in POEMS:
        real = {p.id: p for p in real_kb.lookup_poem(title=fake.title, k=20)}.get(fake.id)
        assert real is not None, fake.id
        assert (real.title, real.author, real.dynasty) == (fake.title, fake.author, fake.dynasty)
        assert real.content.startswith(fake.content), fake.id

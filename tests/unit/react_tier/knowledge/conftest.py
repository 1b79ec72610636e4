"""The session fixtures shared by the tests of the knowledge base on the committed tiny index (tests/data/kb_tiny):
``tiny_root`` (a copy of it) and ``make_kb`` (one loaded index, any query-time settings)."""

from __future__ import annotations

import pytest

from react_tier.knowledge import KnowledgeBase
from tests.unit.react_tier.knowledge.helpers import prebuilt_copy, tiny_settings


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    return prebuilt_copy(tmp_path_factory.mktemp("kb_tiny"))


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

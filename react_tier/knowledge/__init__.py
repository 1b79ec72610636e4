"""The Sui knowledge base: 隋书, 资治通鉴·隋纪, poet biographies and Sui poems, searchable with BM25.

    from react_tier.knowledge import KnowledgeBase
    kb = KnowledgeBase.load()                 # builds the cached index on first use
    kb.search("隋文帝是哪一年去世的", k=5)     # -> [Passage], best first (a multi-fact question is decomposed)
    kb.search_many(["杨素被封为什么国公", "杨素的谥号"], k=5)  # several queries, fused, a quota each
    kb.lookup_poem("空梁落燕泥")              # -> [Poem] (with dynasty, collection, group, group_size)
    kb.poem_group("读曲歌").count             # -> 89: structured poem facts (组诗)

Import-light: the heavy parts (jieba, bm25s, OpenCC) load on KnowledgeBase.load().
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from react_tier.knowledge.models import KnowledgeQueryError, Passage, Poem
from react_tier.knowledge.settings import KnowledgeSettings

if TYPE_CHECKING:
    from react_tier.knowledge.base import KnowledgeBase

__all__ = ["KnowledgeBase", "KnowledgeQueryError", "KnowledgeSettings", "Passage", "Poem"]


def __getattr__(name: str):
    if name == "KnowledgeBase":
        from react_tier.knowledge.base import KnowledgeBase

        return KnowledgeBase
    raise AttributeError(name)

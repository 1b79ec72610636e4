"""KnowledgeBase: load (building first if needed) and search the Sui knowledge base.

Retrieval = two BM25 rankings (jieba words; character unigrams+bigrams) over the same passages, each query
expanded with the classical forms from the alias table, fused by weighted reciprocal rank; then a diversity
step demotes a window that overlaps one ranked above it (consecutive windows of a juan share half their text)
until it sits ``overlap_min_distance`` places below that one, so the top k is not the same text twice in a row
while a near-duplicate that is still strong stays in the top k instead of dropping behind everything else.
Everything is read-only after load, so concurrent searches from several threads are safe.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from pathlib import Path

import numpy as np

from react_tier.knowledge import aliases
from react_tier.knowledge.index import build_index, cache_key, char_tokens, jieba_extra_words
from react_tier.knowledge.models import KnowledgeQueryError, Passage, Poem
from react_tier.knowledge.poems import PoemIndex
from react_tier.knowledge.settings import KnowledgeSettings
from react_tier.knowledge.text import WordTokenizer, clean_query

log = logging.getLogger(__name__)
HISTORY_SOURCES = frozenset({"suishu", "zztj"})
_build_lock = threading.Lock()


def resolve_dirs(settings: KnowledgeSettings) -> tuple[Path, Path]:
    from suiqa import paths

    data_dir = Path(settings.data_dir) if settings.data_dir else paths.data_dir()
    cache_dir = Path(settings.cache_dir) if settings.cache_dir else paths.state_dir() / "kb"
    return data_dir, cache_dir


class KnowledgeBase:
    def __init__(self, settings: KnowledgeSettings, index_dir: Path) -> None:
        import bm25s

        self.settings = settings
        self.index_dir = index_dir
        self.manifest = json.loads((index_dir / "manifest.json").read_text())
        with (index_dir / "passages.jsonl").open(encoding="utf-8") as fh:
            self._records = [json.loads(line) for line in fh]
        self._position = {r["id"]: i for i, r in enumerate(self._records)}
        # windows i and i+1 of one juan overlap when the stride is shorter than the window: near-duplicates
        overlapping = settings.window_stride_chars < settings.window_chars
        juan = [r["id"].rsplit(":", 1)[0] if r["source"] in HISTORY_SOURCES else r["id"] for r in self._records]
        self._overlaps_next = [overlapping and a == b for a, b in itertools.pairwise(juan)] + [False]
        with (index_dir / "poems.jsonl").open(encoding="utf-8") as fh:
            self._poems = PoemIndex([Poem(**json.loads(line)) for line in fh])
        self._word = bm25s.BM25.load(str(index_dir / "word"), show_progress=False)
        self._char = bm25s.BM25.load(str(index_dir / "char"), show_progress=False)
        self._tokenizer = WordTokenizer(jieba_extra_words())

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, settings: KnowledgeSettings | None = None, progress: bool = False) -> KnowledgeBase:
        """Load the cached index; build it first if missing or if the data files' hashes changed."""
        settings = settings or KnowledgeSettings()
        data_dir, cache_dir = resolve_dirs(settings)
        key, hashes = cache_key(settings, data_dir)
        index_dir = cache_dir / key
        if not (index_dir / "manifest.json").is_file():
            with _build_lock:
                if not (index_dir / "manifest.json").is_file():
                    log.info("building the knowledge base index into %s", index_dir)
                    build_index(settings, data_dir, index_dir, hashes, progress=progress)
        return cls(settings, index_dir)

    @classmethod
    def build(cls, settings: KnowledgeSettings | None = None, progress: bool = False,
              force: bool = False) -> KnowledgeBase:
        """Build the index (again, with ``force``) and load it."""
        import shutil

        settings = settings or KnowledgeSettings()
        data_dir, cache_dir = resolve_dirs(settings)
        key, _ = cache_key(settings, data_dir)
        index_dir = cache_dir / key
        if force:
            shutil.rmtree(index_dir, ignore_errors=True)
        return cls.load(settings, progress=progress)

    def __len__(self) -> int:
        return len(self._records)

    # ------------------------------------------------------------------ passages
    def _passage(self, position: int, score: float = 0.0) -> Passage:
        r = self._records[position]
        return Passage(id=r["id"], source=r["source"], title=r["title"], text=r["text"], score=score)

    def get(self, passage_id: str) -> Passage | None:
        """The passage with this stable id, or None."""
        position = self._position.get(passage_id) if isinstance(passage_id, str) else None
        return None if position is None else self._passage(position)

    def _check_k(self, k: object) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.settings.max_k:
            raise KnowledgeQueryError(f"k must be an integer from 1 to {self.settings.max_k}, got {k!r}")
        return k

    def query_tokens(self, query: str) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]]]:
        """((words, chars) of the query itself, (words, chars) added by the alias table); no duplicates."""
        words = list(dict.fromkeys(self._tokenizer.query_words(query)))
        # characters of the kept words only: the question's function words (是, 哪, 了) are noise
        chars = list(dict.fromkeys(t for w in words for t in char_tokens(w)))
        alias_words: list[str] = []
        alias_chars: list[str] = []
        if self.settings.use_aliases:
            for form in aliases.expand(query):
                if form not in words and form not in alias_words:
                    alias_words.append(form)
                alias_chars.extend(t for t in char_tokens(form) if t not in chars and t not in alias_chars)
        return (words, chars), (alias_words, alias_chars)

    def _ranking(self, retriever, tokens: list[str], alias_tokens: list[str]) -> np.ndarray:
        """Document positions by BM25 score (query tokens + alias_weight x alias tokens), best first."""
        scores = None
        for toks, weight in ((tokens, 1.0), (alias_tokens, self.settings.alias_weight)):
            ids = retriever.get_tokens_ids(toks)
            if ids and weight > 0:
                part = retriever.get_scores_from_ids(ids)
                scores = part * weight if scores is None else scores + part * weight
        if scores is None:
            return np.empty(0, dtype=np.int64)
        depth = min(self.settings.fusion_depth, len(scores))
        top = np.argpartition(-scores, depth - 1)[:depth]
        top = top[scores[top] > 0]
        return top[np.argsort(-scores[top], kind="stable")]

    def _overlapping_neighbours(self, position: int) -> tuple[int, ...]:
        """The windows that share text with this one: its neighbours in the same juan."""
        before = position > 0 and self._overlaps_next[position - 1]
        return (position - 1,) * before + (position + 1,) * self._overlaps_next[position]

    def _diversified(self, ranked: list[int], k: int) -> list[int]:
        """The first k of ``ranked``, re-ordered so that a window overlapping one already placed (its neighbour in
        the same juan) comes at least ``overlap_min_distance`` places after it: each place takes the best remaining
        passage that is not that close to an overlapping one, or simply the best remaining one if all are."""
        distance = self.settings.overlap_min_distance
        if not self.settings.skip_overlapping or distance <= 1:
            return ranked[:k]
        remaining = list(ranked)
        placed_at: dict[int, int] = {}
        chosen: list[int] = []
        while remaining and len(chosen) < k:
            slot = len(chosen)
            pick = next((i for i, position in enumerate(remaining)
                         if all(slot - placed_at[n] >= distance
                                for n in self._overlapping_neighbours(position) if n in placed_at)), 0)
            position = remaining.pop(pick)
            placed_at[position] = slot
            chosen.append(position)
        return chosen

    def search(self, query: str, k: int = 5) -> list[Passage]:
        """Passages best first (score = fused reciprocal rank, capped at the score of the passage above, so it
        never increases down the list). Raises KnowledgeQueryError for a bad query."""
        k = self._check_k(k)
        cleaned = clean_query(query, self.settings.max_query_chars)
        (words, chars), (alias_words, alias_chars) = self.query_tokens(cleaned)
        fused: dict[int, float] = {}
        rrf_k = self.settings.rrf_k
        for ranking, weight in ((self._ranking(self._word, words, alias_words), 1.0),
                                (self._ranking(self._char, chars, alias_chars), self.settings.bigram_weight)):
            for rank, position in enumerate(ranking.tolist()):
                fused[position] = fused.get(position, 0.0) + weight / (rrf_k + rank + 1)
        best = self._diversified(sorted(fused, key=lambda p: (-fused[p], p)), k)
        # a demoted window keeps its place: its score is capped at the one above it, so scores never increase
        scores = list(itertools.accumulate((fused[p] for p in best), min))
        return [self._passage(p, score) for p, score in zip(best, scores, strict=True)]

    # ------------------------------------------------------------------ poems
    def lookup_poem(self, text: str | None = None, *, title: str | None = None, author: str | None = None,
                    k: int = 5) -> list[Poem]:
        """Poems matching a line of verse (exact or fuzzy), a title and/or an author; best first."""
        k = self._check_k(k)
        limit = self.settings.max_query_chars
        given = {name: clean_query(value, limit) for name, value in
                 (("text", text), ("title", title), ("author", author)) if value is not None}
        if not given:
            raise KnowledgeQueryError("lookup_poem needs a line of verse, a title or an author")
        return self._poems.lookup(given.get("text"), given.get("title"), given.get("author"), k)

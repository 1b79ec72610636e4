"""KnowledgeBase: load (building first if needed) and search the Sui knowledge base.

Retrieval = two BM25 rankings (jieba words; character unigrams+bigrams) over the same passages, each query
expanded with the classical forms from the hand-written alias table and, for the modern words the table does not
map, from the lexicon learned from the parallel corpus (weighted by its score), fused by weighted reciprocal rank.
A question that asks several things is split into sub-queries (:mod:`.decompose`) and searched with
:meth:`KnowledgeBase.search_many`: the rankings of the whole question and of each part are fused (RRF) and each
query keeps ``subquery_quota`` places for its best passages. A question that names a poem group and asks how many
/ which poems puts the group's record (:mod:`.poem_groups`) first, and a 《title》 puts the poems of that title
first. Then a diversity
step demotes a window that overlaps one ranked above it (consecutive windows of a juan share half their text)
until it sits ``overlap_min_distance`` places below that one, so the top k is not the same text twice in a row
while a near-duplicate that is still strong stays in the top k instead of dropping behind everything else.
Optionally (``dense_weight`` > 0) a learned dense ranking (:mod:`.dense`: a char-n-gram bi-encoder trained on
the corpus, its passage vectors built by ``suiqa kb build --dense``) is one more ranking of the fusion; the
manifest names the encoder, and a missing / stale one is refused. By default (``rerank='proximity'``) each
query's fused top ``rerank_depth`` is re-ranked by how many of its concepts meet in one short span of the window
(:mod:`.rerank`; dev recall@5 0.875 -> 0.917). Everything is read-only after load (the search-form caches only
grow), so concurrent searches from several threads are safe.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from react_tier.knowledge import aliases
from react_tier.knowledge.decompose import decompose
from react_tier.knowledge.index import (
    INDEX_FILES,
    INDEX_FORMAT,
    build_index,
    cache_key,
    char_tokens,
    encoder_file,
    jieba_extra_words,
)
from react_tier.knowledge.lexicon import Lexicon
from react_tier.knowledge.models import KnowledgeQueryError, Passage, Poem
from react_tier.knowledge.poem_groups import PoemGroup, group_name, split_title
from react_tier.knowledge.poems import PoemIndex
from react_tier.knowledge.settings import KnowledgeSettings
from react_tier.knowledge.text import WordTokenizer, clean_query, compact
from suiqa.errors import SuiqaError

log = logging.getLogger(__name__)
HISTORY_SOURCES = frozenset({"suishu", "zztj"})
_build_lock = threading.Lock()
# a question about a poem group's size or members (几首 / 多少首 / 哪几首 / 哪些 / 组诗 / 一共 ...)
GROUP_QUESTION = re.compile(r"[几多少]+首|哪几首|哪些|组诗|一共|总共|共有|共[几多]|收录|分别|包括")
TITLE_IN_BRACKETS = re.compile(r"《([^《》]{1,40})》")
MAX_TITLED = 5  # poems put first for one 《title》 (a group title names up to 89)


def resolve_dirs(settings: KnowledgeSettings) -> tuple[Path, Path]:
    from suiqa import paths

    data_dir = Path(settings.data_dir) if settings.data_dir else paths.data_dir()
    cache_dir = Path(settings.cache_dir) if settings.cache_dir else paths.state_dir() / "kb"
    return data_dir, cache_dir


@dataclass(frozen=True)
class QueryTokens:
    words: list[str]
    chars: list[str]
    extra_words: list[tuple[str, float]]  # (classical form, weight) from the alias table and the lexicon
    extra_chars: list[tuple[str, float]]

    def __iter__(self):
        return iter((self.words, self.chars, self.extra_words, self.extra_chars))


class KnowledgeBase:
    def __init__(self, settings: KnowledgeSettings, index_dir: Path) -> None:
        import bm25s

        self.settings = settings
        self.index_dir = index_dir
        missing = [name for name in INDEX_FILES if not (index_dir / name).exists()]
        if missing:
            raise SuiqaError(f"knowledge base index {index_dir} is incomplete "
                             f"(missing {', '.join(missing)}); rebuild it with `suiqa kb build --force`")
        self.manifest = json.loads((index_dir / "manifest.json").read_text())
        if self.manifest.get("format") != INDEX_FORMAT:
            found = self.manifest.get("format")
            raise SuiqaError(f"knowledge base index {index_dir} has format {found}, this code reads "
                             f"{INDEX_FORMAT}; rebuild it with `suiqa kb build --force`")
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
        self._sent = bm25s.BM25.load(str(index_dir / "sent"), show_progress=False)
        self._sent_owner = np.asarray(json.loads((index_dir / "sentence_owner.json").read_text()), dtype=np.int64)
        # parent of a history window: its juan and the section (biography / 志 section / year) it starts in
        self._section = [(j, r["title"]) if r["source"] in HISTORY_SOURCES else None
                         for j, r in zip(juan, self._records, strict=True)]
        self._tokenizer = WordTokenizer(jieba_extra_words())
        self.lexicon = Lexicon.load(index_dir / "lexicon.json")
        self._search_texts: dict[int, str] = {}  # position -> compact search form, filled on first use
        self._search_titles: dict[int, str] = {}  # position -> compact search form of the title, the same
        with (index_dir / "poem_groups.jsonl").open(encoding="utf-8") as fh:
            self._groups = [PoemGroup(**{**g, "members": tuple(map(tuple, g["members"]))})
                            for g in map(json.loads, fh)]
        # group name / base title (simplified) -> positions of the groups' passages; longest names first
        by_name: dict[str, list[int]] = {}
        for group in self._groups:
            for name in {clean_query(group.name, 1000), clean_query(group.title, 1000)}:
                by_name.setdefault(name, []).append(self._position[group.id])
        self._group_names = sorted(by_name.items(), key=lambda item: -len(item[0]))
        # poem title (and base title of a group member) in compact search form -> passage positions
        self._titles: dict[str, list[int]] = {}
        for poem in self._poems.poems:
            full = compact(clean_query(poem.title, 1000))
            base = compact(clean_query(split_title(poem.title)[0], 1000))
            for key in dict.fromkeys((full, base, compact(group_name(base)))):
                self._titles.setdefault(key, []).append(self._position[poem.id])
        self._dense: tuple | None = None  # (encoder, passage vectors), loaded when dense_weight > 0
        if settings.dense_weight > 0:
            self._dense = self._load_dense()

    def _load_dense(self) -> tuple:
        """The encoder and the passage vectors; refused (naming `suiqa kb build --dense`) when the index has
        no vectors, the encoder file is missing, or it is not the one whose sha256 the manifest records."""
        from react_tier.knowledge.dense import DENSE_VECTORS, REBUILD_HINT, Encoder

        record = self.manifest.get("dense")
        if not record or not (self.index_dir / DENSE_VECTORS).is_file():
            raise SuiqaError(f"dense_weight > 0 but the index {self.index_dir} has no dense vectors; "
                             f"{REBUILD_HINT}")
        path = encoder_file(self.settings, resolve_dirs(self.settings)[1])
        encoder = Encoder.load(path)
        if encoder.sha256 != record["encoder_sha256"]:
            raise SuiqaError(f"the encoder {path} (sha256 {encoder.sha256[:12]}) is stale: the index "
                             f"{self.index_dir} was encoded by {record['encoder_sha256'][:12]}; "
                             f"{REBUILD_HINT}")
        vectors = np.load(self.index_dir / DENSE_VECTORS)
        if vectors.shape != (len(self._records), encoder.weights.shape[1]):
            raise SuiqaError(f"dense vectors of {self.index_dir} have shape {vectors.shape}; {REBUILD_HINT}")
        return encoder, vectors

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

    def query_tokens(self, query: str) -> QueryTokens:
        """The query's own words and characters, plus the weighted classical forms the alias table (weight
        ``alias_weight``) and the learned lexicon (``lexicon_weight`` x its score) add; no duplicates."""
        words = list(dict.fromkeys(self._tokenizer.query_words(query)))
        # characters of the kept words only: the question's function words (是, 哪, 了) are noise
        chars = list(dict.fromkeys(t for w in words for t in char_tokens(w)))
        extra: dict[str, float] = {}
        if self.settings.use_aliases:
            for form in aliases.expand(query):
                extra[form] = max(extra.get(form, 0.0), self.settings.alias_weight)
        if self.settings.use_lexicon and self.settings.lexicon_weight > 0:
            mapped = [w for w in words if aliases.expand(w)]
            for form, score in self.lexicon.expand(words, skip=mapped):
                extra.setdefault(form, self.settings.lexicon_weight * score)
        extra_words = [(f, w) for f, w in extra.items() if f not in words]
        extra_chars: dict[str, float] = {}
        for form, weight in extra.items():
            for t in char_tokens(form):
                if t not in chars:
                    extra_chars[t] = max(extra_chars.get(t, 0.0), weight)
        return QueryTokens(words, chars, extra_words, list(extra_chars.items()))

    def _ranking(self, retriever, tokens: list[str], extra: list[tuple[str, float]]) -> np.ndarray:
        """Document positions by BM25 score (query tokens + weight x each expansion token), best first."""
        scores = None
        ids = retriever.get_tokens_ids(tokens)
        if ids:
            scores = retriever.get_scores_from_ids(ids)
        vocab = retriever.vocab_dict
        weighted = [(vocab[t], w) for t, w in extra if t in vocab and w > 0]
        if weighted:
            data, indices, indptr = (retriever.scores[k] for k in ("data", "indices", "indptr"))
            if scores is None:
                scores = np.zeros(retriever.scores["num_docs"], dtype=np.float32)
            for token_id, weight in weighted:  # a token's postings: documents are unique within them
                lo, hi = indptr[token_id], indptr[token_id + 1]
                scores[indices[lo:hi]] += weight * data[lo:hi]
        if scores is None:
            return np.empty(0, dtype=np.int64)
        depth = min(self.settings.fusion_depth, len(scores))
        top = np.argpartition(-scores, depth - 1)[:depth]
        top = top[scores[top] > 0]
        return top[np.argsort(-scores[top], kind="stable")]

    def _dense_ranking(self, words: list[str], extra: list[tuple[str, float]]) -> list[int]:
        """Passage positions by cosine similarity to the query's content words and classical forms, best
        first."""
        if self._dense is None:
            self._dense = self._load_dense()
        encoder, vectors = self._dense
        query = encoder.encode([" ".join(words + [form for form, _ in extra])])[0]
        if not query.any():
            return []
        scores = vectors @ query
        depth = min(self.settings.fusion_depth, len(scores))
        top = np.argpartition(-scores, depth - 1)[:depth]
        return top[np.argsort(-scores[top], kind="stable")].tolist()

    def _sentence_windows(self, tokens: list[str], extra: list[tuple[str, float]]) -> list[int]:
        """The windows of the best-matching history sentences (child -> parent window), best first, unique."""
        owners = self._sent_owner[self._ranking(self._sent, tokens, extra)]
        _, first = np.unique(owners, return_index=True)
        return owners[np.sort(first)].tolist()

    def _section_window(self, query: str, sections: set) -> int | None:
        """The window of ``query``'s best sentence inside one of ``sections`` (the parents the whole question
        landed in): a sub-query's fact found in the right biography even where another window of it ranks
        higher as a whole."""
        for _, title in sections:  # the section is given: its subject's name would only add noise
            subject = title.rsplit(" ", 1)[-1]
            if len(subject) >= 2 and subject in query and len(query) > len(subject) + 1:
                query = query.replace(subject, "")
        (words, chars, extra_words, extra_chars) = self.query_tokens(query)
        for position in self._sentence_windows(words + chars, extra_words + extra_chars):
            if self._section[position] in sections:
                return position
        return None

    def _structured_ranking(self, query: str) -> list[int]:
        """Records a question names exactly: the poem-group passages of a counting / list question (组诗 named
        in it; a name under three characters only inside 《》), or else the poems whose title, or group
        title, is a 《title》 of the question (exact title first)."""
        if not self.settings.use_poem_groups:
            return []
        titles = [compact(t) for t in TITLE_IN_BRACKETS.findall(query)]
        found: list[int] = []
        if GROUP_QUESTION.search(query):
            for name, positions in self._group_names:
                if len(name) < 2 or name not in query:
                    continue
                if len(name) < 3 and not any(name == group_name(t) or name == t for t in titles):
                    continue
                found.extend(p for p in positions if p not in found)
        if not found:  # a counting question is answered by its group; otherwise the poems of the 《title》
            for title in titles:
                found.extend(p for p in self._titles.get(title, ())[:MAX_TITLED] if p not in found)
        return found

    def _fused(self, query: str) -> dict[int, float]:
        """Reciprocal-rank fusion of the word and character rankings (and the poem-group route) of one query."""
        (words, chars, extra_words, extra_chars) = self.query_tokens(query)
        fused: dict[int, float] = {}
        rrf_k = self.settings.rrf_k
        rankings = [(self._ranking(self._word, words, extra_words).tolist(), 1.0),
                    (self._ranking(self._char, chars, extra_chars).tolist(), self.settings.bigram_weight)]
        if self.settings.sentence_weight > 0:
            rankings.append((self._sentence_windows(words + chars, extra_words + extra_chars),
                             self.settings.sentence_weight))
        if self.settings.dense_weight > 0:
            rankings.append((self._dense_ranking(words, extra_words), self.settings.dense_weight))
        structured = self._structured_ranking(query)
        if structured:  # outweighs the two text rankings together: the records that hold the answer
            rankings.append((structured, 1.0 + self.settings.bigram_weight + 0.01))
        for ranking, weight in rankings:
            for rank, position in enumerate(ranking):
                fused[position] = fused.get(position, 0.0) + weight / (rrf_k + rank + 1)
        if self.settings.coverage_weight > 0 and fused:
            self._reward_coverage(query, fused)
        if self.settings.rerank == "proximity" and fused:
            self._rerank_proximity(query, fused)
        return fused

    def _concepts(self, query: str) -> list[tuple[str, ...]]:
        """The query's content words, each with the classical forms that stand for it (alias table, lexicon)."""
        concepts = []
        for word in dict.fromkeys(self._tokenizer.content_words(query)):
            forms = [word]
            if self.settings.use_aliases:
                forms += aliases.expand(word)
            if self.settings.use_lexicon and not aliases.expand(word):
                forms += [f for f, _ in self.lexicon.expand([word])]
            concepts.append(tuple(dict.fromkeys(forms)))
        return concepts

    def _search_text(self, position: int) -> str:
        text = self._search_texts.get(position)
        if text is None:
            record = self._records[position]
            text = self._search_texts[position] = compact(clean_query(f"{record['title']} {record['text']}",
                                                                      10**7))
        return text

    def _reward_coverage(self, query: str, fused: dict[int, float]) -> None:
        """Coordination-level matching: among the best ``coverage_depth`` passages, one that holds more of the
        question's concepts (a word or any of its classical forms) gains up to ``coverage_weight`` x its score,
        so the window where 韩擒虎 and 卒 and 时年 meet beats the windows that only name him many times."""
        concepts = self._concepts(query)
        if len(concepts) < 2:
            return
        top = sorted(fused, key=lambda p: (-fused[p], p))[:self.settings.coverage_depth]
        for position in top:
            text = self._search_text(position)
            covered = sum(any(form in text for form in forms) for forms in concepts)
            fused[position] *= 1.0 + self.settings.coverage_weight * covered / len(concepts)

    def _document_frequency(self, form: str) -> int:
        """How many windows hold ``form``: its posting list in the word index, else in the character index,
        else (a phrase neither tokenised) that of its rarest character bigram."""
        for retriever, token in ((self._word, form), (self._char, form)):
            token_id = retriever.vocab_dict.get(token)
            if token_id is not None:
                indptr = retriever.scores["indptr"]
                return int(indptr[token_id + 1] - indptr[token_id])
        bigrams = [form[i:i + 2] for i in range(len(form) - 1)]
        return min((self._document_frequency(b) for b in bigrams), default=0) if len(form) > 2 else 0

    def _rerank_proximity(self, query: str, fused: dict[int, float]) -> None:
        """Proximity re-rank (:mod:`.rerank`): each of the best ``rerank_depth`` passages gains up to
        ``rerank_weight`` x its fused score by the idf-weighted share of the question's concepts (its
        ``MAX_CONCEPTS`` rarest) that meet in one span of ``rerank_span`` characters (a concept in its title
        counts everywhere)."""
        from react_tier.knowledge.rerank import MAX_CONCEPTS, best_span, idf

        concepts = [tuple(compact(f) for f in forms if compact(f)) for forms in self._concepts(query)]
        concepts = [forms for forms in concepts if forms]
        if len(concepts) < 2:
            return
        documents = len(self._records)
        weighted = [(idf(max(self._document_frequency(f) for f in forms), documents), forms) for forms in concepts]
        rarest = sorted(range(len(weighted)), key=lambda i: -weighted[i][0])[:MAX_CONCEPTS]
        weights = [weighted[i][0] for i in sorted(rarest)]
        concepts = [weighted[i][1] for i in sorted(rarest)]
        top = sorted(fused, key=lambda p: (-fused[p], p))[:self.settings.rerank_depth]
        for position in top:
            title = self._search_title(position)
            everywhere = [any(f in title for f in forms) for forms in concepts]
            score = best_span(self._search_text(position), concepts, weights, self.settings.rerank_span,
                              everywhere)
            fused[position] *= 1.0 + self.settings.rerank_weight * score

    def _search_title(self, position: int) -> str:
        title = self._search_titles.get(position)
        if title is None:
            title = self._search_titles[position] = compact(clean_query(self._records[position]["title"], 10**4))
        return title

    def subqueries(self, query: str) -> list[str]:
        """The parts of a question that asks several things ([] if it asks one); see :mod:`.decompose`."""
        return decompose(clean_query(query, self.settings.max_query_chars), self._tokenizer.plain_words)

    def search(self, query: str, k: int = 5) -> list[Passage]:
        """Passages best first (score = fused reciprocal rank, capped at the score of the passage above, so it
        never increases down the list). A question that asks several things is searched as itself plus its
        parts (:meth:`search_many`). Raises KnowledgeQueryError for a bad query."""
        k = self._check_k(k)
        cleaned = clean_query(query, self.settings.max_query_chars)
        parts = decompose(cleaned, self._tokenizer.plain_words) if self.settings.decompose else []
        if parts:
            weight = self.settings.subquery_weight
            return self.search_many([cleaned, *parts], k, weights=[1.0] + [weight] * len(parts))
        fused = self._fused(cleaned)
        return self._finish(sorted(fused, key=lambda p: (-fused[p], p)), fused, k)

    def search_many(self, queries: list[str], k: int = 5, quota: int | None = None,
                    weights: list[float] | None = None) -> list[Passage]:
        """Search several queries (e.g. one per fact) and return ONE list: each query's ranking is fused with the
        others by reciprocal rank, and each query first gets ``quota`` places (default ``subquery_quota``) for
        its best passages not already placed (nor overlapping one placed), so no fact is crowded out of the top
        k by another; the rest of the k places go by the fused score. Order: the reserved passages by fused
        score, then the rest. ``weights``: each query's weight in the fusion (default 1 each)."""
        k = self._check_k(k)
        if not isinstance(queries, list | tuple) or not queries:
            raise KnowledgeQueryError("search_many needs a non-empty list of queries")
        quota = self.settings.subquery_quota if quota is None else quota
        weights = list(weights) if weights is not None else [1.0] * len(queries)
        if len(weights) != len(queries):
            raise KnowledgeQueryError("search_many: one weight per query")
        weighted: dict[str, float] = {}
        for q, weight in zip(queries, weights, strict=True):
            cleaned = clean_query(q, self.settings.max_query_chars)
            weighted[cleaned] = max(weighted.get(cleaned, 0.0), float(weight))
        per_query = []
        for q in weighted:
            fused_q = self._fused(q)
            per_query.append(sorted(fused_q, key=lambda p: (-fused_q[p], p)))
        rrf_k = self.settings.rrf_k
        fused: dict[int, float] = {}
        for ranking, weight in zip(per_query, weighted.values(), strict=True):
            for rank, position in enumerate(ranking):
                fused[position] = fused.get(position, 0.0) + weight / (rrf_k + rank + 1)
        reserved: list[int] = []
        if self.settings.section_completion and len(per_query) > 1:
            # the sections of the whole question's best passages; each part reserves its best window there
            sections = {self._section[p] for p in per_query[0][:self.settings.section_depth]} - {None}
            for q in list(weighted)[1:]:
                position = self._section_window(q, sections) if sections else None
                if position is not None and position not in reserved and len(reserved) < k:
                    reserved.append(position)
                    fused[position] = fused.get(position, 0.0)
        for ranking in per_query:
            taken = 0
            for position in ranking:
                if taken >= quota or len(reserved) >= k:
                    break
                if position not in reserved and not any(n in reserved for n in self._overlapping_neighbours(position)):
                    reserved.append(position)
                    taken += 1
        rest = [p for p in sorted(fused, key=lambda p: (-fused[p], p)) if p not in reserved]
        # the reserved passages first (by fused score), so the top 5 of a k=10 search is the k=5 search
        ordered = sorted(reserved, key=lambda p: (-fused[p], p)) + self._diversified(rest, k - len(reserved))
        return self._finish(ordered, fused, k, diversify=False)

    def _finish(self, ranked: list[int], fused: dict[int, float], k: int, diversify: bool = True
                ) -> list[Passage]:
        best = self._diversified(ranked, k) if diversify else ranked[:k]
        # a demoted window keeps its place: its score is capped at the one above it, so scores never increase
        scores = list(itertools.accumulate((fused[p] for p in best), min))
        return [self._passage(p, score) for p, score in zip(best, scores, strict=True)]

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

    def poem_group(self, title: str, author: str | None = None) -> PoemGroup | None:
        """The poem group (组诗) named ``title`` (its name 读曲歌 or base title 读曲歌八十九首, 《》 optional),
        by ``author`` if given (his name as in the poem files, or a ruler's title 隋炀帝); None if there is none.
        Its ``count`` answers "how many poems make up 《X》"; ``members`` lists them."""
        from react_tier.knowledge.poems import AUTHOR_ALIASES

        name = clean_query(title, self.settings.max_query_chars).strip("《》 ")
        wanted = AUTHOR_ALIASES.get(author, author) if author else None
        anonymous = "无名氏"
        for group in self._groups:
            same_title = name in (clean_query(group.name, 1000), clean_query(group.title, 1000))
            if same_title and (wanted is None or (group.author or anonymous) == clean_query(wanted or anonymous, 1000)):
                return group
        return None

"""Proximity re-rank of the fused top ``rerank_depth`` (issue 30): the window where the question's concepts meet
inside ONE short span beats a window of the same biography that only names the subject.

Why: the largest held-out miss class was "right section, wrong window" (8 of 17 held-out misses at 5): the
biography is found, but the window that ranks first is the one naming its subject most often, not the one where
the subject, 卒 and 时年 stand in one sentence. The existing coverage re-rank (``coverage_weight``) counts the
concepts anywhere in the window and weighs them all alike; this scorer counts them inside a span of
``rerank_span`` characters and weighs each concept by its inverse document frequency in the index (a concept
that occurs in every third window, 帝 or 年, tells little), so

    score = max over spans of  sum(idf of the concepts in the span) / sum(idf of all concepts)

and the fused score becomes ``fused x (1 + rerank_weight x score)``. A concept named by the window's title
(the biography's subject) counts in every span. Pure Python over <= 50 windows of ~160 characters: the re-rank
step costs p50 1.1 / p99 3.8 ms of CPU per search, the whole search p50 1.75 / p99 6.1 ms (was 0.56 / 1.9) on
one core (benchmarks/kb_rerank_sweep.py; benchmarks/results/knowledge/ISSUE30.md). Dev recall@5 0.875 -> 0.917.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# the rarest concepts a re-rank looks at: the questions of the three sets have 2-15 (sub-queries included), a
# 1000-character query ~400, which made the re-rank 40 ms instead of ~1 ms; the cap leaves every question alone
MAX_CONCEPTS = 16


def occurrences(text: str, forms: Sequence[str]) -> list[int]:
    """Start offsets of every occurrence of any of ``forms`` in ``text`` (sorted, unique)."""
    found: set[int] = set()
    for form in forms:
        if not form:
            continue
        start = text.find(form)
        while start >= 0:
            found.add(start)
            start = text.find(form, start + 1)
    return sorted(found)


def best_span(text: str, concepts: Sequence[Sequence[str]], weights: Sequence[float], span: int,
              everywhere: Sequence[bool] = ()) -> float:
    """The largest summed weight of distinct concepts that occur inside one span of ``span`` characters of
    ``text``, over the sum of all weights (0..1). ``everywhere[i]``: concept i counts in every span."""
    total = sum(weights)
    if total <= 0:
        return 0.0
    always = sum(w for w, anywhere in zip(weights, everywhere, strict=False) if anywhere)
    hits = sorted((offset, i) for i, forms in enumerate(concepts)
                  if not (i < len(everywhere) and everywhere[i])
                  for offset in occurrences(text, forms))
    best, counts, inside, lo = 0.0, [0] * len(concepts), 0.0, 0
    for offset, i in hits:  # a sliding window over the occurrences, [hits[lo].offset, offset] <= span
        counts[i] += 1
        inside += weights[i] * (counts[i] == 1)
        while offset - hits[lo][0] >= span:
            j = hits[lo][1]
            counts[j] -= 1
            inside -= weights[j] * (counts[j] == 0)
            lo += 1
        best = max(best, inside)
    return (always + best) / total


def idf(document_frequency: int, documents: int) -> float:
    """BM25's idf, floored at a small positive weight so a concept found everywhere still counts a little."""
    return max(0.05, math.log(1 + (documents - document_frequency + 0.5) / (document_frequency + 0.5)))

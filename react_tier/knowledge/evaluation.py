"""Recall of the knowledge base on question sets (tests/data/kb_dev_questions.jsonl, kb_heldout_questions.jsonl).

A question lists the facts that answer it; each fact is a list of alternative passages
``{"source": <id or id prefix>, "evidence": <text>}`` (legacy rows: ``expected`` = one fact). An alternative
matches a returned passage whose id equals ``source`` or starts with ``source + ":"`` (a whole juan, e.g.
``suishu:卷2``) and whose text contains ``evidence`` (punctuation-blind). Evidence keeps the expectation
independent of the window size, which changes the window numbers. A question is a hit at k when EVERY fact has a
matching passage in the top k (a two-fact question with one fact found is a miss), so its "rank" is the place of
the last fact to be found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from react_tier.knowledge.models import Passage
from react_tier.knowledge.text import compact


@dataclass
class DevQuestion:
    id: str
    question: str
    facts: list[list[dict]]
    shape: str = "legacy"

    @property
    def expected(self) -> list[dict]:
        """All alternatives of all facts (the legacy one-fact view)."""
        return [alt for fact in self.facts for alt in fact]


@dataclass
class RecallReport:
    questions: int
    hits_at: dict[int, int]
    misses_at_5: list[str] = field(default_factory=list)
    first_hit_rank: dict[str, int | None] = field(default_factory=dict)
    shapes: dict[str, str] = field(default_factory=dict)

    def recall(self, k: int, shape: str | None = None) -> float:
        if shape is None:
            return self.hits_at[k] / self.questions if self.questions else 0.0
        ranks = [r for q, r in self.first_hit_rank.items() if self.shapes.get(q) == shape]
        return sum(r is not None and r < k for r in ranks) / len(ranks) if ranks else 0.0

    def by_shape(self, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, dict]:
        out = {}
        for shape in sorted(set(self.shapes.values())):
            n = sum(1 for s in self.shapes.values() if s == shape)
            out[shape] = {"questions": n, **{f"at_{k}": round(self.recall(k, shape), 4) for k in ks}}
        return out


def load_questions(path: Path) -> list[DevQuestion]:
    text = path.read_text(encoding="utf-8")
    rows = json.loads(text) if path.suffix == ".json" else [json.loads(x) for x in text.splitlines() if x.strip()]
    return [DevQuestion(r["id"], r["question"], r.get("facts") or [r["expected"]], r.get("shape", "legacy"))
            for r in rows]


def is_hit(passage: Passage, expected: dict) -> bool:
    source = expected["source"].rstrip(":")
    if not (passage.id == source or passage.id.startswith(source + ":")):
        return False
    evidence = expected.get("evidence")
    return evidence is None or compact(evidence) in compact(passage.text)


def covering_rank(results: list[Passage], facts: list[list[dict]]) -> int | None:
    """The 0-based place by which every fact has a matching passage, or None if some fact has none."""
    worst = 0
    for fact in facts:
        rank = next((i for i, p in enumerate(results) if any(is_hit(p, alt) for alt in fact)), None)
        if rank is None:
            return None
        worst = max(worst, rank)
    return worst


def evaluate(kb, questions: list[DevQuestion], ks: tuple[int, ...] = (1, 5), search=None) -> RecallReport:
    """Recall@k of ``search(question, k)`` (default ``kb.search``) over ``questions``."""
    depth = max(ks)
    search = search or kb.search
    report = RecallReport(questions=len(questions), hits_at={k: 0 for k in ks})
    for q in questions:
        rank = covering_rank(search(q.question, depth), q.facts)
        report.first_hit_rank[q.id] = rank
        report.shapes[q.id] = q.shape
        for k in ks:
            if rank is not None and rank < k:
                report.hits_at[k] += 1
        if rank is None or rank >= 5:
            report.misses_at_5.append(q.id)
    return report


def _section(passage_id: str, title: str) -> tuple[str, str]:
    """(juan, title): a history window's title names its juan and the biography / section / year it starts in."""
    return (passage_id.rsplit(":", 1)[0] if passage_id.count(":") >= 2 else passage_id, title)


def _holders(kb, fact: list[dict]) -> list[Passage]:
    """Every passage of the index that satisfies one of the fact's alternatives."""
    texts = getattr(kb, "_eval_compact_texts", None)
    if texts is None:
        texts = kb._eval_compact_texts = [compact(kb._passage(i).text) for i in range(len(kb))]
    found = []
    for i, text in enumerate(texts):
        passage = kb._passage(i)
        for alt in fact:
            source = alt["source"].rstrip(":")
            if (passage.id == source or passage.id.startswith(source + ":")) and \
                    compact(alt.get("evidence") or "") in text:
                found.append(passage)
                break
    return found


def classify_miss(kb, question: DevQuestion, results: list[Passage], k: int = 5) -> str | None:
    """Why a question misses at k (None: a hit). ``wrong_window``: a fact's juan and section (biography, 志
    section or year) is in the top k, but not the window that holds its evidence; ``multi_partial``: some facts
    found, the others nowhere near; ``vocabulary``: a fact's section is not in the top k at all (the words of
    the question do not reach it); ``poem``: a poem / poem-group fact not found."""
    top = results[:k]
    missing = [fact for fact in question.facts if not any(is_hit(p, alt) for p in top for alt in fact)]
    if not missing:
        return None
    top_sections = {_section(p.id, p.title) for p in top}
    for fact in missing:
        if any(_section(h.id, h.title) in top_sections for h in _holders(kb, fact)):
            return "wrong_window"
    if any(alt["source"].startswith("poem") for fact in missing for alt in fact):
        return "poem"
    return "multi_partial" if len(missing) < len(question.facts) else "vocabulary"

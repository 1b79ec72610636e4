"""Recall of the knowledge base on a development question set (tests/data/kb_dev_questions.jsonl).

A question lists the passages that answer it as ``{"source": <id or id prefix>, "evidence": <text>}``:
a hit is a returned passage whose id equals ``source`` or starts with ``source + ":"`` (a whole juan, e.g.
``suishu:卷2``) and whose text contains ``evidence`` (punctuation-blind). Evidence keeps the expectation
independent of the window size, which changes the window numbers.
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
    expected: list[dict]


@dataclass
class RecallReport:
    questions: int
    hits_at: dict[int, int]
    misses_at_5: list[str] = field(default_factory=list)
    first_hit_rank: dict[str, int | None] = field(default_factory=dict)

    def recall(self, k: int) -> float:
        return self.hits_at[k] / self.questions if self.questions else 0.0


def load_questions(path: Path) -> list[DevQuestion]:
    text = path.read_text(encoding="utf-8")
    rows = json.loads(text) if path.suffix == ".json" else [json.loads(x) for x in text.splitlines() if x.strip()]
    return [DevQuestion(r["id"], r["question"], r["expected"]) for r in rows]


def is_hit(passage: Passage, expected: dict) -> bool:
    source = expected["source"].rstrip(":")
    if not (passage.id == source or passage.id.startswith(source + ":")):
        return False
    evidence = expected.get("evidence")
    return evidence is None or compact(evidence) in compact(passage.text)


def evaluate(kb, questions: list[DevQuestion], ks: tuple[int, ...] = (1, 5)) -> RecallReport:
    depth = max(ks)
    report = RecallReport(questions=len(questions), hits_at={k: 0 for k in ks})
    for q in questions:
        results = kb.search(q.question, k=depth)
        rank = next((i for i, p in enumerate(results) if any(is_hit(p, e) for e in q.expected)), None)
        report.first_hit_rank[q.id] = rank
        for k in ks:
            if rank is not None and rank < k:
                report.hits_at[k] += 1
        if rank is None or rank >= 5:
            report.misses_at_5.append(q.id)
    return report

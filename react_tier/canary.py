"""The answer-quality canary: a fixed question set replayed through the serving path, scored on what an answer is.

Operators gate rollouts on health and latency; none of that notices a knowledge base that retrieves the wrong
passages or an adapter that stops citing. Three SLIs per run of the set:

- **recall@5 of the evidence**: the share of questions for which the first 5 distinct passages the run was shown
  (the ``[id]``s in its tool observations, in order; the passage texts looked up in the knowledge base) cover every
  expected fact — the rule of react_tier/knowledge/evaluation.py (source prefix + evidence text);
- **citation validity**: the share of answers that cite at least one source, every cited id being a passage the
  run observed AND that exists in the knowledge base;
- **grounding**: the mean grounding score of the answers (react_tier/grounding.py).

A question set is JSONL in the knowledge base's dev-set format (``id``, ``question``, ``expected`` or ``facts``);
a missing, empty or malformed file is a one-line :class:`CanaryError` naming the file and line. The scoring is
pure: callers supply ``ask(question) -> result`` (the HTTP API's ``sui`` object, or an in-process run's
AgentResult) and the knowledge base to look passages up in. The canary asks one question at a time;
benchmarks/eval_answers.py (``make eval-answers``) scores the knowledge base's whole question sets the same way,
a few at a time (``concurrency``), and splits the SLIs by question shape (:meth:`CanaryReport.grouped`).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from react_tier.knowledge.evaluation import DevQuestion, covering_rank
from suiqa.errors import SuiqaError

if TYPE_CHECKING:
    from react_tier.seams import Knowledge

OBSERVED_ID = re.compile(r"\[([A-Za-z][\w.+-]*:[^\[\]\s]+)\]")
DEFAULT_SET = Path(__file__).with_name("canary_questions.jsonl")


class CanaryError(SuiqaError):
    """The canary cannot run: its question set is missing or malformed (the message names the file and line)."""


class CanaryThresholds(BaseModel):
    """Below any of these the canary fails (``suiqa canary --check``, the KB gate, the alerts' thresholds)."""

    model_config = {"extra": "forbid"}

    min_recall_at_5: float = Field(0.5, ge=0, le=1, description="Share of questions whose expected evidence is "
                                   "among the first 5 passages the run saw.")
    min_citation_validity: float = Field(0.8, ge=0, le=1, description="Share of answers citing only observed, "
                                         "existing passages (and at least one).")
    min_grounding: float = Field(0.3, ge=0, le=1, description="Mean grounding score of the answers.")


def load_canary_set(path: Path | str | None = None) -> list[DevQuestion]:
    """The questions of ``path`` (default: react_tier/canary_questions.jsonl), or CanaryError."""
    path = Path(path) if path is not None else DEFAULT_SET
    if not path.is_file():
        raise CanaryError(f"canary question set not found: {path}")
    questions, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CanaryError(f"{path} line {number}: not JSON ({exc.msg})") from None
        facts = row.get("facts") or ([row["expected"]] if row.get("expected") else None) \
            if isinstance(row, dict) else None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip() \
                or not row.get("id") or not _valid_facts(facts):
            raise CanaryError(f"{path} line {number}: needs 'id', a non-empty 'question' and 'expected' (a list "
                              "of {source, evidence}) or 'facts'")
        if row["id"] in seen:
            raise CanaryError(f"{path} line {number}: id {row['id']!r} appears twice")
        seen.add(row["id"])
        questions.append(DevQuestion(str(row["id"]), row["question"], facts, row.get("shape", "legacy")))
    if not questions:
        raise CanaryError(f"canary question set {path} has no questions")
    return questions


def _valid_facts(facts: Any) -> bool:
    return isinstance(facts, list) and bool(facts) and all(
        isinstance(fact, list) and fact and all(isinstance(a, dict) and isinstance(a.get("source"), str)
                                                for a in fact) for fact in facts)


@dataclass
class QuestionScore:
    id: str
    recall_at_5: bool
    citations_valid: bool
    grounding: float
    observed: list[str] = field(default_factory=list)
    error: str | None = None
    latency_s: float | None = None  # the ask, as run_canary timed it (errors included)


@dataclass
class CanaryReport:
    rows: list[QuestionScore]
    seconds: float = 0.0

    def _ok(self) -> list[QuestionScore]:
        return [r for r in self.rows if r.error is None]

    @property
    def recall_at_5(self) -> float:
        return sum(r.recall_at_5 for r in self.rows) / len(self.rows) if self.rows else 0.0

    @property
    def citation_validity(self) -> float:
        return sum(r.citations_valid for r in self.rows) / len(self.rows) if self.rows else 0.0

    @property
    def grounding(self) -> float:
        ok = self._ok()
        return sum(r.grounding for r in ok) / len(ok) if ok else 0.0

    @property
    def errors(self) -> int:
        return len(self.rows) - len(self._ok())

    def slis(self) -> dict[str, float]:
        return {"recall_at_5": round(self.recall_at_5, 4), "citation_validity": round(self.citation_validity, 4),
                "grounding": round(self.grounding, 4), "questions": len(self.rows), "errors": self.errors}

    def failures(self, thresholds: CanaryThresholds) -> list[str]:
        """What is below its threshold (empty: the canary passes)."""
        checks = [("recall@5", self.recall_at_5, thresholds.min_recall_at_5),
                  ("citation validity", self.citation_validity, thresholds.min_citation_validity),
                  ("grounding", self.grounding, thresholds.min_grounding)]
        return [f"{name} {value:.2f} < {floor:.2f}" for name, value, floor in checks if value < floor]

    def to_dict(self) -> dict:
        return {**self.slis(), "seconds": round(self.seconds, 2), "rows": [asdict(r) for r in self.rows]}

    def grouped(self, key: Callable[[QuestionScore], str]) -> dict[str, CanaryReport]:
        """The rows split by ``key`` (e.g. the question's shape), each group a report of its own (same SLIs; its
        ``seconds`` is 0: the groups ran interleaved), in sorted key order."""
        groups: dict[str, list[QuestionScore]] = {}
        for row in self.rows:
            groups.setdefault(key(row), []).append(row)
        return {name: CanaryReport(groups[name]) for name in sorted(groups)}


def _as_dict(result: Any) -> dict:
    return result if isinstance(result, dict) else result.model_dump()


def observed_ids(result: dict) -> list[str]:
    """The distinct passage ids the run was shown, in order (its steps' observations)."""
    ids: dict[str, None] = {}
    for step in result.get("steps") or []:
        for found in OBSERVED_ID.findall(step.get("observation") or ""):
            ids.setdefault(found)
    return list(ids)


def score(question: DevQuestion, result: Any, kb: Knowledge) -> QuestionScore:
    """One answer's SLIs (``result``: the ``sui`` object of the API, or an AgentResult)."""
    data = _as_dict(result)
    seen = observed_ids(data)
    passages = [p for p in (kb.get(i) for i in seen[:5]) if p is not None]
    rank = covering_rank(passages, question.facts)
    cited = [c["id"] for c in data.get("citations") or []]
    valid = bool(cited) and all(c in seen and kb.get(c) is not None for c in cited)
    grounding = (data.get("grounding") or {}).get("score") or 0.0
    return QuestionScore(question.id, rank is not None, valid, float(grounding), seen[:5])


async def run_canary(questions: list[DevQuestion], ask: Callable[[str], Awaitable[Any]], kb: Knowledge,
                     progress: Callable[[], None] | None = None, concurrency: int = 1) -> CanaryReport:
    """Each question once. The canary's default is its low-priority lane: one at a time, in order; with
    ``concurrency`` n, n workers take the questions in order (at most n asks in flight). The rows keep the
    questions' order either way. A failed request scores 0 on every SLI and is counted in ``errors``."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, not {concurrency}")
    started = time.monotonic()
    rows: list[QuestionScore | None] = [None] * len(questions)
    todo = iter(enumerate(questions))

    async def worker() -> None:
        for index, question in todo:  # one shared iterator: each question is taken by exactly one worker
            asked, answered = time.monotonic(), None
            try:
                result = await ask(question.question)
                answered = time.monotonic()
                row = score(question, result, kb)
            except Exception as exc:  # noqa: BLE001 - a failed answer is a canary result, not a crash
                row = QuestionScore(question.id, False, False, 0.0, error=f"{type(exc).__name__}: {exc}"[:200])
            row.latency_s = round((answered or time.monotonic()) - asked, 3)
            rows[index] = row
            if progress is not None:
                progress()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(questions)) or 1)))
    return CanaryReport([row for row in rows if row is not None], time.monotonic() - started)

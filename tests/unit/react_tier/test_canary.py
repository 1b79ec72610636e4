"""The answer-quality canary (react_tier/canary.py, deployments/canary.py): the question set's clear errors, the
three SLIs over a real tiny knowledge-base index, the thresholds, and the replica lane's gauges."""

from __future__ import annotations

import json

import pytest

from deployments.canary import CanaryLane, CanarySettings
from deployments.metrics import PipelineMetrics
from react_tier.canary import CanaryError, CanaryThresholds, load_canary_set, observed_ids, run_canary, score
from react_tier.knowledge import KnowledgeBase
from react_tier.knowledge.evaluation import DevQuestion
from react_tier.results import AgentResult
from tests.unit.react_tier.knowledge.helpers import prebuilt_copy, tiny_settings

QUESTION = DevQuestion("q1", "隋文帝在哪里去世？", [[{"source": "suishu", "evidence": "崩于大宝殿"}]])


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    return KnowledgeBase.load(tiny_settings(prebuilt_copy(tmp_path_factory.mktemp("kb_canary"))))


def result_for(kb, query: str, cite: str | None = "own", grounding: float = 0.8) -> dict:
    """A run's ``sui``-shaped result whose forced search showed kb.search(query)."""
    passages = kb.search(query, 4)
    observation = "\n".join(f"[{p.id}] 《{p.title}》：{p.text}" for p in passages)
    cited = passages[0].id if cite == "own" else cite
    return {"steps": [{"index": 0, "tool": "search_knowledge", "observation": observation, "forced": True}],
            "citations": [{"id": cited, "source": "x", "title": "t"}] if cited else [],
            "grounding": {"score": grounding}}


def test_the_shipped_set_loads():
    questions = load_canary_set()
    assert len(questions) >= 20 and all(q.facts for q in questions)


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("", "has no questions"),
    ('{"id": "a", "question": "q", "expected": [{"source": "s"}]}\n{not json\n', "line 2: not JSON"),
    ('{"id": "a", "question": "q"}\n', "line 1: needs 'id'"),
    ('{"id": "a", "question": "  ", "expected": [{"source": "s"}]}\n', "line 1: needs"),
    ('{"id": "a", "question": "q", "expected": [{"evidence": "e"}]}\n', "line 1: needs"),
    ('["a"]\n', "line 1: needs"),
    ('{"id": "a", "question": "q", "expected": [{"source": "s"}]}\n' * 2, "line 2: id 'a' appears twice"),
])
def test_bad_question_sets_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "set.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(CanaryError, match=message) as err:
        load_canary_set(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_good_answer_scores_on_every_sli(kb):
    row = score(QUESTION, result_for(kb, "隋文帝 崩于大宝殿"), kb)
    assert row.recall_at_5 and row.citations_valid and row.grounding == 0.8
    assert row.observed == observed_ids(result_for(kb, "隋文帝 崩于大宝殿"))[:5]


def test_evidence_that_misses_the_fact_is_no_recall(kb):
    assert not score(QUESTION, result_for(kb, "韩擒虎"), kb).recall_at_5


@pytest.mark.parametrize("cite", [None, "suishu:卷99:1", "made:up"])
def test_no_citation_or_an_unobserved_or_unknown_one_is_invalid(kb, cite):
    assert not score(QUESTION, result_for(kb, "隋文帝 崩于大宝殿", cite=cite), kb).citations_valid


async def test_report_thresholds_and_errors(kb):
    answers = iter([result_for(kb, "隋文帝 崩于大宝殿"), RuntimeError("upstream down")])

    async def ask(question):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return AgentResult.model_validate({"answer": "a", "finish_reason": "stop", **answer})

    report = await run_canary([QUESTION, QUESTION], ask, kb)
    assert report.slis() == {"recall_at_5": 0.5, "citation_validity": 0.5, "grounding": 0.8, "questions": 2,
                             "errors": 1}
    assert report.failures(CanaryThresholds()) == ["citation validity 0.50 < 0.80"]
    assert report.failures(CanaryThresholds(min_recall_at_5=0.4, min_citation_validity=0.5)) == []
    json.dumps(report.to_dict())


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_at_most_concurrency_asks_in_flight_and_rows_in_question_order(kb, concurrency):
    import asyncio

    questions = [DevQuestion(f"q{i}", f"问题{i}", QUESTION.facts, "multi" if i % 2 else "single") for i in range(7)]
    in_flight, peak, asked = 0, 0, []

    async def ask(question):
        nonlocal in_flight, peak
        asked.append(question)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02 if question.endswith(("1", "4")) else 0.001)  # out-of-order completions
        in_flight -= 1
        if question == "问题5":
            raise RuntimeError("upstream down")
        return result_for(kb, "隋文帝 崩于大宝殿")

    done = []
    report = await run_canary(questions, ask, kb, progress=lambda: done.append(1), concurrency=concurrency)
    assert peak == concurrency and len(done) == 7  # bounded, and the bound is reached
    assert [r.id for r in report.rows] == [q.id for q in questions] and asked == [q.question for q in questions]
    assert report.errors == 1 and report.rows[5].error == "RuntimeError: upstream down"
    assert all(r.latency_s is not None and r.latency_s >= 0 for r in report.rows)
    assert report.rows[1].latency_s >= 0.02 > report.rows[0].latency_s


async def test_concurrency_below_one_is_refused(kb):
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        await run_canary([QUESTION], lambda q: None, kb, concurrency=0)


async def test_grouped_reports_keep_the_slis_per_group(kb):
    shapes = {"a": "multi", "b": "single", "c": "multi"}
    answers = {"问a": result_for(kb, "隋文帝 崩于大宝殿"), "问b": result_for(kb, "韩擒虎", grounding=0.2),
               "问c": result_for(kb, "隋文帝 崩于大宝殿", cite=None, grounding=0.4)}

    async def ask(question):
        return answers[question]

    report = await run_canary([DevQuestion(i, f"问{i}", QUESTION.facts, s) for i, s in shapes.items()], ask, kb)
    groups = report.grouped(lambda row: shapes[row.id])
    assert list(groups) == ["multi", "single"]
    assert groups["multi"].slis() == {"recall_at_5": 1.0, "citation_validity": 0.5, "grounding": 0.6,
                                      "questions": 2, "errors": 0}
    assert groups["single"].slis() == {"recall_at_5": 0.0, "citation_validity": 1.0, "grounding": 0.2,
                                       "questions": 1, "errors": 0}


class LaneAgent:
    def __init__(self, kb) -> None:
        self.kb, self.requests = kb, []

    async def load_knowledge(self):
        return self.kb

    async def run(self, request):
        self.requests.append(request)
        return AgentResult.model_validate({"answer": "a", "finish_reason": "degraded",
                                           **result_for(self.kb, request.question)})


async def test_lane_exports_gauges_and_runs_uncached(kb, tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps({"id": "q1", "question": "隋文帝 崩于大宝殿",
                                "expected": [{"source": "suishu", "evidence": "崩于大宝殿"}]}), encoding="utf-8")
    metrics, agent = PipelineMetrics(), LaneAgent(kb)
    lane = CanaryLane(agent, CanarySettings(questions=path), metrics)
    await lane.run_once()
    value = metrics.registry.get_sample_value
    assert value("sui_canary_recall_at_5") == 1.0 and value("sui_canary_citation_validity") == 1.0
    assert value("sui_canary_grounding") == 0.8 and value("sui_canary_errors") == 0
    assert value("sui_canary_last_run_timestamp_seconds") > 0
    assert agent.requests[0].cache == "off" and agent.requests[0].request_id.startswith("canary-")
    assert lane.start()._task is None  # interval 0: no background pass


def test_lane_refuses_to_start_on_a_bad_set(tmp_path):
    with pytest.raises(CanaryError, match="not found"):
        CanaryLane(object(), CanarySettings(questions=tmp_path / "missing.jsonl"))

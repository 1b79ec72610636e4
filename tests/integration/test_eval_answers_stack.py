"""`python -m benchmarks.eval_answers` (`make eval-answers`) against the real cpu-tiny-shared stack: two questions of
each knowledge-base set plus an edge set whose second question the API refuses (over the tiny profile's 500-character
limit: a 400), so every question must come back as a scored row, the refused one with its error and counted (exit 1);
the files' structure; the run's forced search and the search alone seeing the same first passage (same index, same
settings); the tiny models named as such; the stack left running."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from suiqa.paths import REPO_ROOT

pytestmark = pytest.mark.integration
SETS = {"dev": "kb_dev_questions.jsonl", "heldout": "kb_heldout_questions.jsonl",
        "heldout30": "kb_heldout30_questions.jsonl"}


def first_ids(name: str, n: int) -> list[str]:
    lines = (REPO_ROOT / "tests" / "data" / SETS[name]).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["id"] for line in lines if line.strip()][:n]


def test_eval_answers_scores_every_question_and_counts_the_failed_one(stack, tmp_path):
    _, env = stack
    edge = tmp_path / "edge.jsonl"
    fact = [[{"source": "suishu", "evidence": "崩于大宝殿"}]]
    edge.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in (
        {"id": "e1", "shape": "single", "question": "隋文帝在哪座宫殿去世？", "facts": fact},
        {"id": "e2", "shape": "single", "question": "隋文帝" * 200, "facts": fact})), encoding="utf-8")
    out_dir = tmp_path / "out"
    args = ["--limit", "2", "--set", "dev", "--set", "heldout", "--set", "heldout30", "--set", f"edge={edge}",
            "--concurrency", "2", "--out", str(out_dir)]
    run = subprocess.run([sys.executable, "-m", "benchmarks.eval_answers", *args], env=env, cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stdout + run.stderr[-3000:]  # the refused question: counted, not lost
    assert "1 questions failed" in run.stderr and "Traceback" not in run.stderr, run.stderr[-3000:]

    result = json.loads((out_dir / "answers.json").read_text())
    rows = result["rows"]
    assert [r["id"] for r in rows] == [*first_ids("dev", 2), *first_ids("heldout", 2), *first_ids("heldout30", 2),
                                       "e1", "e2"]
    for row in rows:
        assert isinstance(row["recall_at_5"], bool) and isinstance(row["citations_valid"], bool)
        assert 0 <= row["grounding"] <= 1 and row["latency_s"] > 0 and isinstance(row["search_hit_at_5"], bool)
    answered = [r for r in rows if r["id"] != "e2"]
    assert all(r["error"] is None and r["observed"] for r in answered), answered
    # the run's forced search_knowledge(question) and the search alone: the same index and settings
    assert all(r["observed"][0] == r["search_top5"][0] for r in answered), answered
    # tiny models: a degraded answer lists the forced search's evidence with its ids (as the canary test says)
    assert sum(r["citations_valid"] for r in answered) >= 0.8 * len(answered)
    refused = rows[-1]
    assert refused["error"].startswith("RuntimeError: HTTP 400") and not refused["recall_at_5"], refused
    assert refused["observed"] == [] and refused["grounding"] == 0.0

    sets = result["sets"]
    assert list(sets) == ["dev", "heldout", "heldout30", "edge"]
    assert [s["all"]["errors"] for s in sets.values()] == [0, 0, 0, 1]
    assert all(s["all"]["questions"] == 2 for s in sets.values())
    for name, s in sets.items():
        shapes = sorted({r["shape"] for r in rows if r["set"] == name})
        assert list(s["by_shape"]) == shapes and sum(b["questions"] for b in s["by_shape"].values()) == 2
        assert 0 <= s["all"]["search_recall_at_5"] <= 1 and set(s["search"]) == {"at_1", "at_5", "at_10"}
        assert s["all"]["latency_s"]["n"] == 2
    assert sets["edge"]["all"]["recall_at_5"] <= 0.5 and sets["edge"]["all"]["citation_validity"] <= 0.5

    assert result["tiny"] is True and result["stack"]["started"] is False
    assert result["agent"]["max_observation_chars"] == 400 and result["agent"]["always_search_first"] is True
    assert all(1 <= s["all"]["passages_seen"] <= 5 for name, s in sets.items() if name != "edge")
    domain = result["stack"]["models"]["domain"]
    assert domain["random_weights"] is True and len(domain["served"]) == 2  # one process: both roles' names
    assert result["stack"]["models"]["pipeline"]["served"][0]["sui"]["tiny_models"] is True
    assert result["stack"]["api_config"].endswith("api-cpu-tiny.yaml")
    report = (out_dir / "report.md").read_text()
    assert "Tiny random-weight models" in report and "## heldout30 by shape" in report
    assert "- edge e2: RuntimeError: HTTP 400" in report and "already up" in report
    assert (out_dir / "answers.png").read_bytes()[:4] == b"\x89PNG"
    status = subprocess.run([sys.executable, "-m", "stackctl.cli", "status"], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr  # the stack it found is left running

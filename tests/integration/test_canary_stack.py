"""`suiqa canary` and `suiqa canary gate-kb` against the real cpu-tiny-shared stack: the SLIs through the API, the
clear errors for a missing or malformed question set, and the gate refusing a deliberately broken knowledge-base
build (the tiny test corpus: a handful of passages, so the canary's evidence is gone) with the live index
untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from suiqa.paths import REPO_ROOT

pytestmark = pytest.mark.integration
SUIQA = [sys.executable, "-m", "stackctl.cli"]
SHORT_SET = 8  # questions of the shipped set the gate test replays (each twice: candidate and current)


def suiqa(env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*SUIQA, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_canary_through_the_api_prints_its_slis(stack):
    _, env = stack
    out = suiqa(env, "canary", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["questions"] >= 20 and report["errors"] == 0
    # tiny models: a degraded answer lists the forced search's evidence with its ids, so its citations are valid
    assert report["recall_at_5"] >= 0.5 and report["citation_validity"] >= 0.8, report
    assert 0 <= report["grounding"] <= 1
    assert all(row["observed"] for row in report["rows"])


@pytest.mark.parametrize("content, message", [(None, "canary question set not found"),
                                              ("{oops\n", "line 1: not JSON")])
def test_bad_question_set_is_a_clear_error_before_any_request(stack, tmp_path, content, message):
    _, env = stack
    path = tmp_path / "set.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    for args in (["canary"], ["canary", "gate-kb"]):
        out = suiqa(env, *args, "--questions", str(path), timeout=120)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_gate_refuses_a_broken_kb_build_and_keeps_the_live_index(stack, tmp_path):
    from react_tier.knowledge import KnowledgeSettings
    from react_tier.knowledge.base import resolve_dirs

    _, env = stack
    questions = tmp_path / "short.jsonl"
    shipped = (REPO_ROOT / "react_tier" / "canary_questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions.write_text("\n".join(shipped[:SHORT_SET]) + "\n", encoding="utf-8")
    broken = tmp_path / "broken-data"
    shutil.copytree(REPO_ROOT / "tests" / "data" / "kb_tiny" / "data", broken)  # the wrong corpus
    live_cache = resolve_dirs(KnowledgeSettings())[1]
    before = sorted(p.name for p in live_cache.iterdir())
    out = suiqa(env, "canary", "gate-kb", "--data-dir", str(broken), "--questions", str(questions))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "refused: the canary fails on the candidate (recall@5" in out.stderr
    candidate = next(line for line in out.stdout.splitlines() if line.startswith("candidate"))
    current = next(line for line in out.stdout.splitlines() if line.startswith("current"))
    assert "recall@5 0.00" in candidate and "recall@5 0.00" not in current, out.stdout
    assert sorted(p.name for p in live_cache.iterdir()) == before
    from suiqa.paths import run_dir

    assert not (run_dir() / "kb-staging").exists()  # the candidate is gone

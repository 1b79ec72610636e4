"""CI's mutant sample (tests/mutation/report.py): the mutants mutmut left without a verdict are named for the
Makefile's second pass, and a sample that stayed unchecked says why from mutmut's log, spinner frames left out
(CI failed twice with only "not checked" lines to go on)."""

from __future__ import annotations

from tests.mutation import report

RESULTS = {"react_tier/request.py": {
    "react_tier.request.xǁAgentRequestǁchecked__mutmut_1": "killed",
    "react_tier.request.xǁAgentRequestǁchecked__mutmut_2": "not checked",
    "react_tier.request.x_other__mutmut_1": "not checked"}}  # not in the sample
COUNTS = "🫥 0  ⏰ 0  🤔 0  🙁 0  🔇 0  🧙 0"  # the rest of a mutmut progress line


def _sample(tmp_path, monkeypatch, *patterns):
    path = tmp_path / "sample.txt"
    path.write_text("# a comment\n\n" + "\n".join(patterns) + "\n", encoding="utf-8")
    monkeypatch.setattr(report, "SAMPLE", path)


def test_only_the_samples_mutants_without_a_verdict_are_left_for_the_second_pass(tmp_path, monkeypatch):
    _sample(tmp_path, monkeypatch, "react_tier.request.xǁAgentRequestǁchecked__mutmut_*")
    assert report.unchecked_sample(RESULTS) == ["react_tier.request.xǁAgentRequestǁchecked__mutmut_2"]
    done = {"react_tier/request.py": {**RESULTS["react_tier/request.py"],
                                      "react_tier.request.xǁAgentRequestǁchecked__mutmut_2": "survived"}}
    assert report.unchecked_sample(done) == []


def test_the_log_tail_keeps_the_last_progress_and_what_mutmut_said_last(tmp_path):
    log = tmp_path / "mutation-sample.log"
    log.write_text("⠋ Generating mutants⠙ Generating mutants\n    done in 15979ms\n⠏ Running stats\r⠋ Running stats\n"
                   f"⠸ 9/6825  🎉 9 {COUNTS}\r⠼ 10/6825  🎉 10 {COUNTS}\r"
                   "Traceback (most recent call last):\nChildProcessError: boom\n🎉 a.b__mutmut_1\n🙁 a.b__mutmut_2\n",
                   encoding="utf-8")
    tail = report.log_tail(log).splitlines()
    assert tail[0] == f"last progress: ⠼ 10/6825  🎉 10 {COUNTS}"
    assert tail[1:] == ["    done in 15979ms", "Traceback (most recent call last):", "ChildProcessError: boom"]
    assert report.log_tail(log, lines=1).splitlines()[1:] == ["ChildProcessError: boom"]
    assert "is missing" in report.log_tail(tmp_path / "none.log")


def test_an_unchecked_sample_fails_and_prints_the_log_tail(tmp_path, monkeypatch, capsys):
    _sample(tmp_path, monkeypatch, "react_tier.request.xǁAgentRequestǁchecked__mutmut_*", "gone.x_f__mutmut_*")
    log = tmp_path / "mutation-sample.log"
    log.write_text(f"⠼ 1/2  🎉 1 {COUNTS}\rTerminated\n", encoding="utf-8")
    monkeypatch.setattr(report, "SAMPLE_LOG", log)
    assert report.check_sample(RESULTS, {}) == 1
    out = capsys.readouterr().out
    assert out.startswith("2 sample patterns, 2 problems\n1 sample mutants not checked")
    assert "last progress: ⠼ 1/2" in out and "Terminated" in out
    assert "gone.x_f__mutmut_*: no such mutant" in out
    assert report.check_sample({"react_tier/request.py": {
        "react_tier.request.xǁAgentRequestǁchecked__mutmut_1": "killed"}}, {}) == 1  # the gone pattern still fails

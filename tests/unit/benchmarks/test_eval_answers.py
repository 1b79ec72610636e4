"""benchmarks/eval_answers.py (`make eval-answers`) without a stack: the aggregation per set and per shape with the
search-vs-run comparison, the report files, the HTTP asking (retries, errors as rows) against a double of the
pipeline's chat route, the question sets' errors, and the stack's start/stop around a run."""

from __future__ import annotations

import json
import subprocess
import types

import httpx
import pytest

from benchmarks import eval_answers as ev
from react_tier.canary import CanaryReport, QuestionScore
from react_tier.knowledge import KnowledgeBase
from react_tier.knowledge.evaluation import DevQuestion, RecallReport
from tests.unit.react_tier.knowledge.helpers import prebuilt_copy, tiny_settings

FACT = [[{"source": "suishu", "evidence": "崩于大宝殿"}]]
QUESTIONS = [DevQuestion("d1", "q1", FACT, "multi"), DevQuestion("d2", "q2", FACT, "multi"),
             DevQuestion("d3", "q3", FACT, "single"), DevQuestion("d4", "q4", FACT, "single")]


def canned() -> tuple[CanaryReport, RecallReport]:
    """d1: run and search found it; d2: only the search (the run's queries missed it); d3: only the run; d4: the
    request failed (search ranked it 7th: no hit at 5)."""
    rows = [QuestionScore("d1", True, True, 0.9, ["suishu:卷1:1"], latency_s=1.0),
            QuestionScore("d2", False, True, 0.5, ["zztj:卷1:1"], latency_s=3.0),
            QuestionScore("d3", True, False, 0.1, ["suishu:卷1:1"], latency_s=2.0),
            QuestionScore("d4", False, False, 0.0, error="RuntimeError: HTTP 504: timeout", latency_s=9.0)]
    ranks = {"d1": 0, "d2": 4, "d3": None, "d4": 7}
    retrieval = RecallReport(4, {1: 1, 5: 2, 10: 3}, first_hit_rank=ranks, shapes={q.id: q.shape for q in QUESTIONS})
    return CanaryReport(rows, seconds=12.0), retrieval


def test_a_set_is_summarised_per_shape_with_search_beside_the_run():
    report, retrieval = canned()
    s = ev.summarise_set(QUESTIONS, report, retrieval)
    whole = s["all"]
    assert {k: whole[k] for k in ("questions", "errors", "recall_at_5", "citation_validity", "grounding",
                                  "search_recall_at_5")} == {
        "questions": 4, "errors": 1, "recall_at_5": 0.5, "citation_validity": 0.5,
        "grounding": 0.5, "search_recall_at_5": 0.5}  # grounding: of the 3 answered; recall: of all 4
    assert whole["search_only"] == ["d2"] and whole["agent_only"] == ["d3"]
    assert whole["passages_seen"] == 1.0  # the 3 answered runs saw one passage each; the failed one is not counted
    assert whole["latency_s"]["p50"] == 2.5 and whole["latency_s"]["max"] == 9.0 and whole["latency_s"]["n"] == 4
    assert list(s["by_shape"]) == ["multi", "single"]
    multi, single = s["by_shape"]["multi"], s["by_shape"]["single"]
    assert (multi["questions"], multi["recall_at_5"], multi["search_recall_at_5"], multi["errors"]) == (2, 0.5, 1.0, 0)
    assert multi["search_only"] == ["d2"] and multi["agent_only"] == []
    assert (single["questions"], single["recall_at_5"], single["search_recall_at_5"], single["errors"]) == \
        (2, 0.5, 0.0, 1)
    assert single["grounding"] == 0.1 and single["agent_only"] == ["d3"]
    assert s["search"] == {"at_1": 0.25, "at_5": 0.5, "at_10": 0.75} and s["seconds"] == 12.0


def test_every_question_is_one_row_with_its_error_and_the_search_view():
    report, retrieval = canned()
    rows = ev.rows_of("dev", QUESTIONS, report, retrieval, {"q1": ["suishu:卷1:1", "x:1"]})
    assert [r["id"] for r in rows] == ["d1", "d2", "d3", "d4"] and {r["set"] for r in rows} == {"dev"}
    assert rows[0]["search_top5"] == ["suishu:卷1:1", "x:1"] and rows[0]["search_hit_at_5"] is True
    assert rows[3]["error"].startswith("RuntimeError: HTTP 504") and rows[3]["search_rank"] == 7
    assert rows[3]["search_hit_at_5"] is False and rows[2]["search_rank"] is None
    for row in rows:
        assert {"shape", "question", "recall_at_5", "citations_valid", "grounding", "observed", "latency_s"} <= set(row)


def result(tiny: bool) -> dict:
    report, retrieval = canned()
    return {"command": "python -m benchmarks.eval_answers --limit 4", "time": "2026-12-08T00:00:00+00:00",
            "wall_s": 20.0, "concurrency": 4, "limit": 4, "tiny": tiny, "notes": [],
            "agent": {"always_search_first": True, "search_k": 4, "max_observation_chars": 400, "max_steps": 3},
            "stack": {"profile": "cpu-tiny-shared", "started": True, "api": "http://127.0.0.1:8080/v1",
                      "models": {"pipeline": {"served": [{"id": "sui-react", "sui": {"tiny_models": tiny}}]},
                                 "domain": {"model": "/m/domain-internlm2", "served_model_name": ["a", "b"],
                                            "served": [{"id": "a", "root": "/m/domain-internlm2"}],
                                            "random_weights": tiny}}},
            "sets": {"dev": ev.summarise_set(QUESTIONS, report, retrieval)},
            "rows": ev.rows_of("dev", QUESTIONS, report, retrieval, {})}


def test_the_report_names_models_command_tables_and_errors(tmp_path):
    got = result(tiny=True)
    ev.write(got, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert ev.TINY_NOTE in md and "`python -m benchmarks.eval_answers --limit 4`" in md
    assert "| domain | a | `/m/domain-internlm2` | yes |" in md
    assert "| dev | 4 | 1 | 0.50 | 0.50 | 1 / 1 | 1.0 | 0.50 | 0.50 | 2.50 |" in md
    assert "## dev by shape" in md and "| multi | 2 | 0 | 0.50 | 1.00 | 1 / 0 | 1.0 |" in md
    assert "| single | 2 | 1 | 0.50 | 0.00 | 0 / 1 | 1.0 |" in md
    assert "Pipeline API: `sui-react` ({\"tiny_models\": true})" in md and "| pipeline |" not in md
    assert "`search_k` = 4 passages" in md and "`max_observation_chars` = 400" in md
    assert "- dev d4: RuntimeError: HTTP 504: timeout" in md and "started by this run" in md
    assert "recall@1 / @5 / @10: dev 0.250 / 0.500 / 0.750" in md
    assert json.loads((tmp_path / "answers.json").read_text())["rows"][3]["id"] == "d4"
    assert (tmp_path / "answers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    real = ev.render_markdown(result(tiny=False))
    assert ev.TINY_NOTE not in real and "| no |" in real


def test_question_sets_unknown_duplicate_and_limited(tmp_path):
    with pytest.raises(ev.EvalError, match="unknown question set 'nope'"):
        ev.parse_sets(["nope"])
    assert list(ev.parse_sets(None)) == ["dev", "heldout", "heldout30"]
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"id": "d01", "question": "q", "facts": FACT}) + "\n", encoding="utf-8")
    with pytest.raises(ev.EvalError, match="'d01' is in both dev and mine"):
        ev.load_sets(ev.parse_sets(["dev", f"mine={path}"]), None)
    with pytest.raises(ev.EvalError, match="not found"):
        ev.load_sets({"x": tmp_path / "missing.jsonl"}, None)
    assert [len(v) for v in ev.load_sets(ev.parse_sets(["dev", "heldout30"]), 2).values()] == [2, 2]


# ------------------------------------------------------------------------------- asking over HTTP (a double)

@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    return KnowledgeBase.load(tiny_settings(prebuilt_copy(tmp_path_factory.mktemp("kb_eval"))))


def pipeline_double(kb, script: dict[str, list[int]], seen: list):
    """The pipeline's POST /v1/chat/completions as the API answers it: 200 with the ``sui`` object (a forced
    search's observation, a citation), or the OpenAI error format (429 with Retry-After, 400). ``script``:
    question -> the statuses of its successive attempts (the last one repeats)."""
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert request.url.path == "/v1/chat/completions" and body["sui_cache"] == "off"
        assert body["model"] == "sui-react" and request.headers["authorization"] == "Bearer k"
        question = body["messages"][-1]["content"]
        seen.append(question)
        statuses = script.get(question, [200])
        status = statuses[min(sum(q == question for q in seen) - 1, len(statuses) - 1)]
        if status != 200:
            error = {"error": {"message": f"status {status}", "type": "x", "param": None, "code": None}}
            headers = {"Retry-After": "0"} if status == 429 else {}
            return httpx.Response(status, json=error, headers=headers)
        passages = kb.search(question, 3)
        sui = {"steps": [{"index": 0, "tool": "search_knowledge", "forced": True,
                          "observation": "\n".join(f"[{p.id}] 《{p.title}》：{p.text}" for p in passages)}],
               "citations": [{"id": passages[0].id, "source": "x", "title": "t"}], "grounding": {"score": 0.5}}
        return httpx.Response(200, json={"id": "c", "object": "chat.completion", "choices": [], "sui": sui})

    return httpx.MockTransport(handle)


async def test_asking_retries_a_429_and_keeps_a_failed_question_as_its_row(kb):
    questions = [DevQuestion("a", "隋文帝 崩于大宝殿", FACT), DevQuestion("b", "韩擒虎 字子通", FACT),
                 DevQuestion("c", "太长的问题", FACT), DevQuestion("d", "一直排队", FACT)]
    seen: list[str] = []
    script = {"隋文帝 崩于大宝殿": [429, 200], "太长的问题": [400], "一直排队": [429]}
    report = await ev.ask_all("http://api/v1", "sui-react", "k", questions, kb, concurrency=2, timeout_s=5,
                              transport=pipeline_double(kb, script, seen))
    assert [r.id for r in report.rows] == ["a", "b", "c", "d"]
    a, b, c, d = report.rows
    assert a.error is None and a.recall_at_5 and a.citations_valid and seen.count("隋文帝 崩于大宝殿") == 2
    assert b.error is None and not b.recall_at_5 and b.citations_valid
    assert c.error.startswith("RuntimeError: HTTP 400") and seen.count("太长的问题") == 1  # no retry of a 400
    assert d.error.startswith("RuntimeError: HTTP 429") and seen.count("一直排队") == ev.RETRIES + 1
    assert report.errors == 2


# ------------------------------------------------------------------------------- the stack around a run

def args_for(tmp_path, **extra):
    return ev.argparse.Namespace(set=["dev"], limit=1, concurrency=1, out=tmp_path / "out", profile="cpu-tiny",
                                 url=None, api_key=None, api_config=None, timeout=5.0, **extra)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SUIQA_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "run").mkdir(parents=True)
    return tmp_path / "home"


def fake_cli(home, calls: list, up_ok: bool = True):
    """`suiqa up` / `suiqa down` as the real ones behave for this module: up records the run state with its URLs
    (or fails and records nothing), down removes it."""
    def run(*args, timeout):
        calls.append(args[0])
        state = home / "run" / "stack.json"
        if args[0] == "up" and up_ok:
            state.write_text(json.dumps({"profile": "cpu-tiny", "ray": True, "servers": {},
                                         "urls": {"api": "http://127.0.0.1:9/v1", "model": "sui-react"}}))
        elif args[0] == "down":
            state.unlink(missing_ok=True)
        return subprocess.CompletedProcess(args, 0 if up_ok or args[0] == "down" else 1, stdout="{}")

    return run


def test_no_stack_up_starts_one_and_stops_it_even_when_the_run_fails(home, tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(ev, "_stack_cli", fake_cli(home, calls))
    monkeypatch.setattr(KnowledgeBase, "load", staticmethod(lambda settings, progress=False: object()))

    def boom(*a, **k):
        assert calls == ["up"]  # the questions run while the stack is up
        raise RuntimeError("mid-run failure")

    monkeypatch.setattr(ev, "evaluate_set", boom)
    with pytest.raises(RuntimeError, match="mid-run failure"):
        ev.run(args_for(tmp_path), [])
    assert calls == ["up", "down"] and not (home / "run" / "stack.json").exists()


def test_a_failed_up_is_a_clear_error_and_still_cleans_up(home, tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(ev, "_stack_cli", fake_cli(home, calls, up_ok=False))
    with pytest.raises(ev.EvalError, match=r"`suiqa up --profile cpu-tiny` failed \(exit 1\)"):
        ev.run(args_for(tmp_path), [])
    assert calls == ["up", "down"]


def test_a_running_stack_is_used_and_left_running(home, tmp_path, monkeypatch):
    calls: list[str] = []
    (home / "run" / "stack.json").write_text(json.dumps(
        {"profile": "cpu-tiny", "urls": {"api": "http://127.0.0.1:9/v1", "model": "sui-react"}, "servers": {}}))
    monkeypatch.setattr(ev, "_stack_cli", fake_cli(home, calls))
    monkeypatch.setattr(KnowledgeBase, "load", staticmethod(lambda settings, progress=False: types.SimpleNamespace(
        index_dir=tmp_path / "index")))
    monkeypatch.setattr(ev, "evaluate_set", lambda name, qs, kb, target, args: (
        {"target": target}, [{"id": q.id} for q in qs]))
    monkeypatch.setattr(ev, "served_models", lambda state, api, key: {"pipeline": {}})
    got = ev.run(args_for(tmp_path), ["--set", "dev", "--limit", "1"])
    assert calls == [] and got["stack"]["started"] is False
    assert got["sets"]["dev"]["target"]["api"] == "http://127.0.0.1:9/v1" and len(got["rows"]) == 1
    assert got["command"] == "python -m benchmarks.eval_answers --set dev --limit 1"


def test_a_partly_up_stack_is_refused(home, tmp_path, monkeypatch):
    (home / "run" / "stack.json").write_text(json.dumps({"profile": "cpu-tiny", "ray": False}))
    monkeypatch.setattr(ev, "_stack_cli", lambda *a, **k: pytest.fail("must not start or stop anything"))
    with pytest.raises(ev.EvalError, match="partly up"):
        ev.run(args_for(tmp_path), [])

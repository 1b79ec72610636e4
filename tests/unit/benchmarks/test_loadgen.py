"""The agent trace exporter (benchmarks/agent_trace.py) on the log lines a real agent run writes, checked with
AIPerf's own trace loader; AIPerf's export read back (benchmarks/aiperf_client.py); the clients' agreement
(benchmarks/loadgen.aggregate)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
from pathlib import Path

import pytest

from benchmarks import agent_trace, aiperf_client
from benchmarks.loadgen import aggregate
from react_tier import AgentSettings, ReActAgent
from react_tier.request import AgentRequest
from suiqa.logs import configure_json_logging
from tests.scripted_openai import Reply, ScriptedOpenAI
from tests.unit.react_tier.helpers import FakeKnowledgeBase

REPO = Path(__file__).resolve().parents[3]
SEARCH = 'Thought: 需要查资料\nAction: search_knowledge\nAction Input: {"query": "大业 开通济渠"}'
ASK = 'Thought: 问专家\nAction: ask_sui_expert\nAction Input: {"question": "通济渠何时开凿？"}'
ANSWER = "Thought: 知道了\nFinal Answer: 隋炀帝于大业元年开通济渠 [suishu:3:1]。"
AIPERF_PY = REPO / ".venv-aiperf" / "bin" / "python"


async def _logged_runs(run_ids: tuple[str, ...]) -> tuple[list[dict], dict]:
    """Real agent runs against a scripted OpenAI server (with delays, so latencies are measurable), logged by
    the replica's JSON formatter; returns (log lines, {run id: AgentResult})."""
    with ScriptedOpenAI() as server:
        for _ in run_ids:
            server.script("domain", Reply("草稿", delay_s=0.05, prompt_tokens=40),
                          Reply("大业元年。", delay_s=0.05, prompt_tokens=30))
            server.script("agent", Reply(SEARCH, delay_s=0.05, prompt_tokens=300),
                          Reply(ASK, delay_s=0.05, prompt_tokens=420),
                          Reply(ANSWER, delay_s=0.05, prompt_tokens=510))
        endpoint = {"base_url": server.base_url, "timeout_s": 5, "retry_backoff_s": 0.01}
        settings = AgentSettings.load(domain_llm={**endpoint, "model": "domain"},
                                      agent_llm={**endpoint, "model": "agent"})
        agent = ReActAgent.from_settings(settings, knowledge_base=FakeKnowledgeBase())
        out = io.StringIO()
        handler = configure_json_logging(("react_tier",), stream=out)
        results = {}
        try:
            for rid in run_ids:  # one after the other: each run takes its own script replies
                request = AgentRequest(question="大运河是谁开凿的？", request_id=rid)
                results[rid] = await agent.run(request)
        finally:
            logger = logging.getLogger("react_tier")
            logger.removeHandler(handler)
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
            await agent.aclose()
    return [json.loads(line) for line in out.getvalue().splitlines()], results


@pytest.fixture(scope="module")
async def logged():
    return await _logged_runs(("run-1", "run-2"))


def _events(lines: list[dict], tmp_path: Path) -> list[dict]:
    path = tmp_path / "pipeline.jsonl"
    path.write_text("not json: a traceback line\n" + "".join(json.dumps(x) + "\n" for x in lines))
    return agent_trace.read_events(path)


async def test_runs_hold_every_call_with_the_tokens_vllm_reported_and_the_tools(logged, tmp_path):
    lines, results = logged
    runs = agent_trace.build_runs(_events(lines, tmp_path))
    assert [r.run_id for r in runs] == ["run-1", "run-2"]
    for run in runs:
        result = results[run.run_id]
        assert run.finish_reason == result.finish_reason == "stop"
        for tier in ("agent", "domain"):
            calls = [c for c in run.calls if c.tier == tier]
            assert len(calls) == result.usage[tier].calls
            assert sum(c.prompt_tokens for c in calls) == result.usage[tier].prompt_tokens
            assert sum(c.output_tokens for c in calls) == result.usage[tier].completion_tokens
        assert [c.tier for c in run.calls] == ["domain", "agent", "agent", "domain", "agent"]
        assert all(c.latency_ms >= 45 for c in run.calls)  # the scripted 50 ms delays
        starts = [c.start_ms for c in run.calls]
        # the log's stamps are in milliseconds: a start may round to -0.1 ms
        assert starts == sorted(starts) and starts[0] >= -1 and all(g >= -2 for g in run.gaps_ms())
        tools = {s.tool: s for s in run.steps if s.tool}
        assert set(tools) == {"search_knowledge", "ask_sui_expert"}
        # the tool alone: the step's agent call (>= 50 ms) is subtracted; the expert's domain call is
        # the tool's
        assert 0 <= tools["search_knowledge"].tool_ms < tools["search_knowledge"].latency_ms - 40
        assert tools["ask_sui_expert"].tool_ms >= 45
        assert run.latency_ms >= sum(c.latency_ms for c in run.calls)


async def test_the_window_keeps_only_runs_inside_it(logged, tmp_path):
    lines, _ = logged
    runs = agent_trace.build_runs(_events(lines, tmp_path))
    second = agent_trace.build_runs(_events(lines, tmp_path), since=runs[1].start - 0.0005)
    assert [r.run_id for r in second] == ["run-2"]
    assert agent_trace.build_runs(_events(lines, tmp_path), until=runs[0].start) == []
    cut = [x for x in lines if not (x["request_id"] == "run-2" and x["event"] == "run_end")]
    unfinished_left_out = agent_trace.build_runs(_events(cut, tmp_path))
    assert [r.run_id for r in unfinished_left_out] == ["run-1"]


async def test_mooncake_lines_order_calls_and_share_blocks_like_the_prompts_do(logged, tmp_path):
    lines, _ = logged
    runs = agent_trace.build_runs(_events(lines, tmp_path))
    rows = agent_trace.mooncake_lines(runs, {"agent": "qwen-agent", "domain": "internlm2-chat-sui"}, block=16,
                                      shared_prefix={"agent": 200, "domain": 20})
    assert len(rows) == 10 and rows[0]["timestamp"] == 0
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    assert {r["extra"]["model"] for r in rows if r["tier"] == "agent"} == {"qwen-agent"}
    for row in rows:
        assert len(row["hash_ids"]) == -(-row["input_length"] // 16) and row["output_length"] >= 1
    agent = [r for r in rows if r["tier"] == "agent"]
    run1 = [r for r in agent if r["run_id"] == "run-1"]
    run2 = [r for r in agent if r["run_id"] == "run-2"]
    # 200 shared tokens = 12 full blocks: every run's first agent call starts with the same 12 ids
    assert run1[0]["hash_ids"][:12] == run2[0]["hash_ids"][:12]
    assert run1[0]["hash_ids"][12] != run2[0]["hash_ids"][12]
    # call k re-sends call k-1's prompt: all of its full blocks (300 tokens -> 18) come first
    assert run1[1]["hash_ids"][:18] == run1[0]["hash_ids"][:18]
    assert run1[2]["hash_ids"][:26] == run1[1]["hash_ids"][:26]
    assert run1[1]["hash_ids"][18] != run1[0]["hash_ids"][18]  # call 1's partial last block (12 tokens)
    # AIPerf's rule: one hash id, one block size. Only a row's last block may be partial, so an id that ends a
    # partial row must appear nowhere else
    partial_ends = {r["hash_ids"][-1] for r in rows if r["input_length"] % 16}
    for row in rows:
        assert not partial_ends & set(row["hash_ids"][:-1]), row
    assert not set(run1[1]["hash_ids"][18:]) & set(run2[1]["hash_ids"])  # nothing else shared across runs
    domain = [r for r in rows if r["tier"] == "domain"]
    assert all(r["hash_ids"][0] == domain[0]["hash_ids"][0] for r in domain)  # the domain system prompt block
    only = agent_trace.mooncake_lines(runs, {}, tier="domain")
    assert {r["tier"] for r in only} == {"domain"} and only[0]["timestamp"] == 0


async def test_write_trace_files_and_summary(logged, tmp_path):
    lines, results = logged
    runs = agent_trace.build_runs(_events(lines, tmp_path))
    summary = agent_trace.write_trace(runs, tmp_path / "out", {"agent": "a", "domain": "d"})
    assert summary["runs"] == 2 and summary["trace_calls"] == 10
    assert summary["per_run"]["agent"]["calls"] == 3 and summary["per_run"]["domain"]["calls"] == 2
    assert summary["per_run"]["agent"]["prompt_tokens"] == results["run-1"].usage["agent"].prompt_tokens
    assert summary["tools"]["search_knowledge"]["calls"] == 2
    doc = json.loads((tmp_path / "out" / "runs.json").read_text())
    assert len(doc["runs"]) == 2 and len(doc["runs"][0]["gaps_ms"]) == 4
    assert len((tmp_path / "out" / "trace.jsonl").read_text().splitlines()) == 10


@pytest.mark.skipif(not AIPERF_PY.is_file(), reason="AIPerf's venv is missing: `make aiperf-env`")
async def test_aiperf_own_loader_reads_the_trace_as_mooncake_with_the_models_and_lengths(logged, tmp_path):
    lines, _ = logged
    runs = agent_trace.build_runs(_events(lines, tmp_path))
    agent_trace.write_trace(runs, tmp_path, {"agent": "qwen-agent", "domain": "internlm2-chat-sui"},
                            shared_prefix={"agent": 200})
    check = (
        "import json, sys\n"
        "from aiperf.dataset.loader.mooncake_trace import MooncakeTraceDatasetLoader\n"
        "from aiperf.dataset.loader.models import MooncakeTrace\n"
        "rows = [json.loads(l) for l in open(sys.argv[1])]\n"
        "assert all(MooncakeTraceDatasetLoader.can_load(r) for r in rows)\n"
        "t = [MooncakeTrace.model_validate(r) for r in rows]\n"
        "print(json.dumps([[x.timestamp, x.input_length, x.output_length, len(x.hash_ids), x.extra['model'],"
        " x.session_id] for x in t]))\n")
    out = subprocess.run([str(AIPERF_PY), "-c", check, str(tmp_path / "trace.jsonl")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    parsed = json.loads(out.stdout)
    mine = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert parsed == [[r["timestamp"], r["input_length"], r["output_length"], len(r["hash_ids"]),
                       r["extra"]["model"], None] for r in mine]


def test_aiperf_export_becomes_a_runner_step():
    export = json.loads((REPO / "tests" / "data" / "aiperf_profile_export.json").read_text())
    step = aiperf_client.step_from_export(export)
    assert step["status"] == "ok" and step["requests"] == 77 and step["failures"] == 0
    assert step["req_s"] == pytest.approx(15.148, abs=1e-3) and step["output_tok_s"] == pytest.approx(242.367)
    assert step["ttft_ms"]["p50"] == pytest.approx(38.465, abs=1e-3) and step["ttft_ms"]["n"] == 77
    assert step["e2e_ms"]["p50"] == pytest.approx(115.066, abs=1e-3) and step["output_tokens"]["mean"] == 16
    assert aiperf_client.step_from_export({})["status"] == "FAILED"


def test_aiperf_commands_send_the_same_load_as_the_runner(tmp_path):
    base = aiperf_client.base_cmd(Path("/x/aiperf"), "http://127.0.0.1:8080", "sui-react", "/m", tmp_path,
                                  api_key="k", ignore_eos=False)
    assert "--use-server-token-count" in base and base[base.index("--api-key") + 1] == "k"
    extra = base[base.index("--extra-inputs") + 1:]
    assert extra[0] == "temperature:0" and "ignore_eos:true" not in extra  # the pipeline ends its answers
    domain = aiperf_client.base_cmd(Path("/x/aiperf"), "http://h", "m", "/m", tmp_path, ignore_eos=True)
    assert domain[domain.index("--extra-inputs") + 1:][:2] == ["temperature:0", "ignore_eos:true"]
    loop = aiperf_client.closed_loop_cmd(base, tmp_path / "d.jsonl", 4, 20)
    assert loop[loop.index("--concurrency") + 1] == "4"
    assert loop[loop.index("--benchmark-duration") + 1] == "20"
    path = aiperf_client.write_single_turn(["问一", "问二"], 32, tmp_path / "st.jsonl")
    assert [json.loads(x) for x in path.read_text().splitlines()] == [
        {"text": "问一", "output_length": 32}, {"text": "问二", "output_length": 32}]
    with pytest.raises(aiperf_client.AIPerfError, match="make aiperf-env"):
        aiperf_client.aiperf_bin(tmp_path / "missing")


def _round(client, r, req_s, ttft, status="ok"):
    return {"client": client, "round": r, "status": status, "req_s": req_s, "output_tok_s": req_s * 32,
            "ttft_p50_ms": ttft, "e2e_p50_ms": 1000 / req_s if req_s else None}


def test_aggregate_medians_best_and_agreement_with_locust():
    rows = [_round("locust", 1, 4.0, 100), _round("locust", 2, 4.2, 110), _round("locust", 3, 3.8, 90),
            _round("vllm-bench", 1, 4.1, 105), _round("vllm-bench", 2, 4.3, 100),
            _round("vllm-bench", 3, 4.0, 95), _round("aiperf", 1, 3.0, 150), _round("aiperf", 2, 3.1, 140),
            _round("aiperf", 3, 0, None, "FAILED")]
    agg = aggregate(rows)
    assert agg["locust"]["req_s"] == {"median": 4.0, "best": 4.2}
    assert agg["locust"]["ttft_p50_ms"]["best"] == 90
    assert agg["vllm-bench"]["ratio_to_locust"]["req_s"] == pytest.approx(1.025)
    assert all(agg["vllm-bench"]["agree"].values())
    assert agg["aiperf"]["rounds"] == 2 and agg["aiperf"]["req_s"]["median"] == pytest.approx(3.05)
    assert agg["aiperf"]["agree"]["req_s"] is False and agg["aiperf"]["agree"]["ttft_p50_ms"] is False


def test_cli_refuses_in_one_line_without_a_stack_or_with_a_bad_mode(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from stackctl.cli import app

    monkeypatch.setenv("SUIQA_HOME", str(tmp_path / "home"))  # no stack state here
    fake = tmp_path / "aiperf"
    fake.write_text("#!/bin/sh\n")
    monkeypatch.setattr(aiperf_client, "DEFAULT_BIN", fake)
    from suiqa.errors import SuiqaError

    def refused(*args: str) -> str:  # stackctl.cli.main prints a SuiqaError as one line, exit code 1
        result = CliRunner().invoke(app, ["bench", "loadgen", *args])
        assert result.exit_code == 1 and isinstance(result.exception, SuiqaError), result.output
        return str(result.exception)

    assert "`suiqa up` first" in refused("compare", "--duration", "1")
    assert "compare or trace" in refused("replay")
    assert "must be positive" in refused("compare", "--users", "0")
    monkeypatch.setattr(aiperf_client, "DEFAULT_BIN", tmp_path / "none")
    assert "make aiperf-env" in refused("trace")


def test_each_clients_own_result_becomes_one_row_layout():
    from benchmarks.gpu.vllm_bench import merge
    from benchmarks.loadgen import _row
    from benchmarks.stats import SLO, summarize_step

    vllm = merge([{"duration": 2.0, "completed": 2, "failed": 0, "total_output_tokens": 16,
                   "ttfts": [0.1, 0.2], "itls": [[0.01] * 7, [0.01] * 7], "errors": ["", ""]}], chat=True)
    records = [{"start": 100.0 + i, "ok": True, "ttft_ms": 110.0, "e2e_ms": 180.0, "tpot_ms": 10.0,
                "output_tokens": 8, "itl_ms": [10.0] * 7} for i in range(2)]
    locust = summarize_step(records, 2, 100.0, 2.0, SLO())
    export = json.loads((REPO / "tests" / "data" / "aiperf_profile_export.json").read_text())
    rows = [_row("vllm-bench", 1, vllm, 1.0), _row("locust", 1, locust, 1.0),
            _row("aiperf", 1, aiperf_client.step_from_export(export), 1.0)]
    assert [r["output_tokens_per_request"] for r in rows] == [8.0, 8.0, 16.0]
    assert rows[0]["ttft_p50_ms"] == pytest.approx(160.0) and rows[1]["ttft_p50_ms"] == 110.0
    assert rows[0]["req_s"] == 1.0 and rows[1]["req_s"] == 1.0 and rows[2]["requests"] == 77


def test_a_local_tokenizer_becomes_an_offline_hf_cache_entry_without_weights(tmp_path):
    folder = tmp_path / "domain-tiny"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json", "model.safetensors"):
        (folder / name).write_text("{}")
    name = aiperf_client.cached_tokenizer(folder, tmp_path / "hf")
    repo = tmp_path / "hf" / "hub" / "models--local--domain-tiny"
    assert name == "local/domain-tiny" and (repo / "refs" / "main").read_text() == aiperf_client.SNAPSHOT
    snap = repo / "snapshots" / aiperf_client.SNAPSHOT
    files = sorted(p.name for p in snap.iterdir())
    assert files == ["config.json", "tokenizer.json", "tokenizer_config.json"]


def test_replayed_records_map_to_their_trace_line_and_model(tmp_path):
    from benchmarks.loadgen import _replayed_latencies

    rows = [{"input_length": 100, "extra": {"model": "qwen-agent"}},
            {"input_length": 40, "extra": {"model": "internlm2-chat-sui"}},
            {"input_length": 120, "extra": {"model": "qwen-agent"}}]
    # AIPerf's record layout (profile_export.jsonl of a replay): session_num is the trace line
    records = [{"metadata": {"session_num": n, "turn_index": 0},
                "metrics": {"request_latency": {"value": latency, "unit": "ms"},
                            "input_sequence_length": {"value": rows[n]["input_length"] + 20,
                                                      "unit": "tokens"}}}
               for n, latency in ((2, 300.0), (0, 100.0), (1, 50.0))]
    (tmp_path / "profile_export.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = _replayed_latencies(tmp_path, rows)
    assert out["qwen-agent"]["n"] == 2 and out["qwen-agent"]["p50"] == 200.0
    assert out["internlm2-chat-sui"] == {"n": 1, "mean": 50.0, "p50": 50.0, "p90": 50.0, "max": 50.0}
    assert out["server_prompt_tokens_over_trace"]["max"] == 20.0
    assert _replayed_latencies(tmp_path / "none", rows) == {}

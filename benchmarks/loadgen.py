"""The field's load generators beside ours: AIPerf, ``vllm bench serve`` and the Locust runner on the same
load.

    flock /tmp/suiqa-stack.lock python -m benchmarks.loadgen compare --targets domain,pipeline --users 4 \
        --duration 20 --rounds 3 --max-tokens 32 --out benchmarks/results/loadgen
    flock /tmp/suiqa-stack.lock python -m benchmarks.loadgen trace --users 4 --duration 20 \
        --out benchmarks/results/loadgen        (`make bench-loadgen` runs both on a stack it starts)

Why: a number from our Locust runner means something to others only if their own tool, on the same load, gets
the same number. ``compare`` runs, against each target of the running stack (the domain vLLM tier, and the
pipeline's OpenAI-compatible API on Ray Serve), the three clients with the same closed-loop concurrency, the
same prompts (benchmarks/data/sui_questions.txt), the same output cap, the same ``ignore_eos`` (domain on,
pipeline off: the pipeline ends its answers itself) and the same token count (the server's ``usage``, never a
re-tokenization), in ``--rounds`` interleaved rounds (the order rotates each round, so no client always runs
on a warmer server), and reports each client's median and best with its ratio to the Locust runner's median;
|ratio - 1| <= 10% agrees.

The clients differ where they must, and the report says where that shows:

- Locust (benchmarks/runner.py) and AIPerf run for a duration; ``vllm bench serve`` runs a request count, set
  to what the Locust runner completed in round 1, so the three last about as long. Locust counts requests that
  completed inside its window; vLLM's client divides by the time until its last request ended (the tail runs
  at less than full concurrency); AIPerf counts what completed in its duration plus a grace period.
- TTFT: Locust and AIPerf stamp the first chunk that carries output; vLLM's client stamps the first chunk with
  ``choices``, which for chat is the role-only opening chunk, so benchmarks.gpu.vllm_bench adds the first gap.

``trace`` captures the pipeline's agent workload from a real run (the Locust runner on the pipeline for
``--duration``), exports it (benchmarks/agent_trace.py: runs.json + an AIPerf mooncake trace) and replays the
trace with AIPerf against the vLLM tier(s) at its own timestamps; the report puts the recorded per-call
latency (seen from the pipeline's replica) beside the replayed one (seen by AIPerf)."""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import aiperf_client
from benchmarks.openai_stream import load_prompts
from benchmarks.stats import SLO, write_json

REPO = Path(__file__).resolve().parent.parent
PROMPTS = REPO / "benchmarks" / "data" / "sui_questions.txt"
CLIENTS = ("locust", "vllm-bench", "aiperf")
METRICS = ("req_s", "output_tok_s", "ttft_p50_ms", "e2e_p50_ms")
HIGHER_IS_BETTER = {"req_s": True, "output_tok_s": True, "ttft_p50_ms": False, "e2e_p50_ms": False}
TOLERANCE = 0.10


@dataclass
class Load:
    """One target and the load every client sends it."""

    name: str            # domain | pipeline
    url: str             # base URL, no /v1
    model: str
    tokenizer: str       # the served model's folder (vLLM's client and AIPerf load it)
    users: int
    duration_s: float
    max_tokens: int
    ignore_eos: bool
    api_key: str | None = None


# ------------------------------------------------------------------------------------------------ the stack

def stack_loads(state: dict, users: int, duration_s: float, max_tokens: int, api_key: str | None) -> dict:
    """The targets of the running stack, from its run state (``$SUIQA_HOME/run/stack.json``, written by
    ``suiqa up``; read as data: benchmarks sit below stackctl). Also the agent tier and the replica's log. A
    tier that requires a key gets it from SUIQA_<ROLE>_API_KEY (the state never holds keys:
    stackctl/tier_keys.py)."""
    import os

    from serving.config import ServingProfile

    urls, servers = state.get("urls") or {}, state.get("servers") or {}
    if "api" not in urls or "domain" not in servers:
        raise SystemExit("no running stack with a pipeline API and a domain tier (`suiqa up` first)")
    profiles = {role: ServingProfile.model_validate(servers[role])
                for role in ("domain", "agent") if role in servers}
    domain = profiles["domain"]
    agent = profiles.get("agent") or domain  # cpu-tiny-shared: one process, the agent's name served last
    agent_model = agent.api_model_name if "agent" in profiles else domain.served_model_name[-1]
    tiers = {"domain": {"url": domain.base_url, "model": domain.api_model_name,
                        "tokenizer": domain.model_path},
             "agent": {"url": agent.base_url, "model": agent_model, "tokenizer": agent.model_path}}
    domain_key = os.environ.get("SUIQA_DOMAIN_API_KEY")
    loads = {"domain": Load("domain", domain.base_url, domain.api_model_name, domain.model_path, users,
                            duration_s, max_tokens, True, domain_key),
             "pipeline": Load("pipeline", urls["api"].removesuffix("/v1"), urls["model"], domain.model_path,
                              users, duration_s, max_tokens, False, api_key)}
    return {"loads": loads, "tiers": tiers, "log": urls.get("logs_pipeline"), "profile": state.get("profile")}


def read_state(path: Path | None = None) -> dict:
    if path is None:
        from suiqa.paths import run_dir

        path = run_dir() / "stack.json"
    if not path.is_file():
        raise SystemExit(f"no stack state at {path} (`suiqa up` first)")
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------------ the clients

def _row(client: str, round_: int, step: dict, seconds: float) -> dict:
    def p50(key: str) -> float | None:
        d = step.get(key)
        return round(d["p50"], 1) if d else None

    out_tokens = step.get("output_tokens")  # a distribution (Locust, AIPerf) or absent (vLLM's client)
    return {"client": client, "round": round_, "status": step.get("status", "ok"),
            "requests": step.get("requests", step.get("completed")), "failures": step.get("failures", 0),
            "req_s": round(step.get("req_s") or 0.0, 3),
            "output_tok_s": round(step.get("output_tok_s") or 0.0, 1),
            "ttft_p50_ms": p50("ttft_ms"), "e2e_p50_ms": p50("e2e_ms"),
            "output_tokens_per_request": out_tokens.get("mean") if isinstance(out_tokens, dict)
            else step.get("output_tokens_per_request"), "wall_s": round(seconds, 1)}


def run_locust(load: Load, work: Path, seed: int) -> dict:
    import shutil

    from benchmarks.runner import LoadSpec, run_step

    shutil.rmtree(work, ignore_errors=True)  # Locust appends to its records file: never count a rerun twice

    spec = LoadSpec(host=load.url, model=load.model, max_tokens=str(load.max_tokens),
                    ignore_eos=load.ignore_eos, prompts=str(PROMPTS), seed=seed, processes=1,
                    extra_env={"BENCH_API_KEY": load.api_key} if load.api_key else {})
    return run_step(spec, load.users, load.duration_s, work, SLO())


def run_vllm_bench(load: Load, dataset: Path, num_prompts: int, work: Path, name: str, seed: int) -> dict:
    import os

    from benchmarks.gpu import vllm_bench

    args = argparse.Namespace(base_url=load.url, endpoint="/v1/chat/completions", backend="openai-chat",
                              model=load.model, tokenizer=load.tokenizer, concurrency=load.users,
                              num_prompts=num_prompts, clients=1, input_len=0, output_len=load.max_tokens,
                              dataset_jsonl=str(dataset), seed=seed, timeout=load.duration_s * 6 + 120,
                              keep_detailed=False, name=name, out=str(work), ignore_eos=load.ignore_eos,
                              temperature=0.0)
    if load.api_key:  # vLLM's client sends OPENAI_API_KEY as the bearer token
        os.environ["OPENAI_API_KEY"] = load.api_key
    summary = vllm_bench.run(args)
    summary.setdefault("requests", summary.get("completed", 0) + summary.get("failed", 0))
    summary["failures"] = summary.get("failed", 0)
    return summary


def run_aiperf(load: Load, dataset: Path, work: Path, seed: int, binary: Path) -> dict:
    base = aiperf_client.base_cmd(binary, load.url, load.model, load.tokenizer, work, api_key=load.api_key,
                                  ignore_eos=load.ignore_eos)
    cmd = aiperf_client.closed_loop_cmd(base, dataset, load.users, load.duration_s, seed)
    return aiperf_client.step_from_export(aiperf_client.run(cmd, work, load.duration_s * 6 + 180))


def write_datasets(prompts: list[str], max_tokens: int, out: Path) -> dict[str, Path]:
    """The same prompts in each client's format: vLLM's ``custom`` ({"prompt"}), AIPerf's ``single_turn``."""
    out.mkdir(parents=True, exist_ok=True)
    vllm_path = out / "prompts-vllm.jsonl"
    with vllm_path.open("w", encoding="utf-8") as fh:
        for prompt in prompts:
            fh.write(json.dumps({"prompt": prompt}, ensure_ascii=False) + "\n")
    return {"vllm-bench": vllm_path, "aiperf": aiperf_client.write_single_turn(prompts, max_tokens,
                                                                               out / "prompts-aiperf.jsonl")}


# ------------------------------------------------------------------------------------------------ statistics

def aggregate(rows: list[dict]) -> dict:
    """Per client: the median and the best (highest throughput, lowest latency) over its ok rounds; each
    median's ratio to the Locust runner's, and whether it is within TOLERANCE."""
    out: dict = {}
    for client in CLIENTS:
        ok = [r for r in rows if r["client"] == client and r["status"] == "ok"]
        if not ok:
            out[client] = {"rounds": 0}
            continue
        agg: dict = {"rounds": len(ok)}
        for m in METRICS:
            vals = [r[m] for r in ok if r[m] is not None]
            if vals:
                agg[m] = {"median": round(statistics.median(vals), 3),
                          "best": max(vals) if HIGHER_IS_BETTER[m] else min(vals)}
        out[client] = agg
    base = out.get("locust", {})
    for client, agg in out.items():
        agg["ratio_to_locust"], agg["agree"] = {}, {}
        for m in METRICS:
            if m in agg and m in base and base[m]["median"]:
                ratio = agg[m]["median"] / base[m]["median"]
                agg["ratio_to_locust"][m] = round(ratio, 3)
                agg["agree"][m] = abs(ratio - 1) <= TOLERANCE
    return out


def _children_cpu_s() -> float:
    """User + system CPU seconds of the client processes this one ran and waited for (their own children
    included when they waited for them): what a client took from the 2 cores the server also runs on."""
    import os

    t = os.times()
    return t.children_user + t.children_system


def compare_target(load: Load, rounds: int, out: Path, aiperf: Path, progress=print) -> dict:
    """``rounds`` rounds of the three clients on one target; the order rotates each round."""
    prompts = load_prompts(str(PROMPTS))
    datasets = write_datasets(prompts, load.max_tokens, out / "raw" / load.name)
    rows, num_prompts = [], None
    for r in range(1, rounds + 1):
        order = CLIENTS[(r - 1) % 3:] + CLIENTS[:(r - 1) % 3]
        if num_prompts is None and order[0] != "locust":
            order = ("locust",) + tuple(c for c in order if c != "locust")
        for client in order:
            work = out / "raw" / load.name / f"{client}-r{r}"
            started, cpu_before = time.monotonic(), _children_cpu_s()
            try:
                if client == "locust":
                    step = run_locust(load, work, seed=r)
                    if num_prompts is None:
                        num_prompts = max(load.users * 2, step["completed_in_window"])
                elif client == "vllm-bench":
                    step = run_vllm_bench(load, datasets[client], num_prompts, work, f"{load.name}-r{r}",
                                          seed=r)
                else:
                    step = run_aiperf(load, datasets[client], work, r, aiperf)
            except Exception as exc:  # noqa: BLE001 - one failed client run is a FAILED row, not a lost table
                step = {"status": "FAILED", "error": f"{type(exc).__name__}: {exc}"[:300]}
            row = _row(client, r, step, time.monotonic() - started)
            row["client_cpu_s"] = round(_children_cpu_s() - cpu_before, 2)
            if row["requests"]:
                row["client_cpu_ms_per_request"] = round(1000 * row["client_cpu_s"] / row["requests"], 2)
            if step.get("error"):
                row["error"] = step["error"]
            rows.append(row)
            progress(f"{load.name} round {r} {client:10s} req/s={row['req_s']:.2f} "
                     f"out tok/s={row['output_tok_s']:.0f} TTFT p50={row['ttft_p50_ms']} "
                     f"E2E p50={row['e2e_p50_ms']} ms "
                     f"({row['requests']} requests, {row['failures']} failed, {row['wall_s']} s)"
                     + (f" {row['error']}" if row.get("error") else ""))
    return {"target": load.name, "url": load.url, "model": load.model, "users": load.users,
            "duration_s": load.duration_s, "max_tokens": load.max_tokens, "ignore_eos": load.ignore_eos,
            "vllm_bench_num_prompts": num_prompts, "rounds": rows, "clients": aggregate(rows)}


# ------------------------------------------------------------------------------------------------ trace

def capture_and_replay(info: dict, users: int, duration_s: float, max_tokens: int, out: Path, aiperf: Path,
                       api_key: str | None, progress=print) -> dict:
    """A real pipeline run under the Locust runner, its trace, and AIPerf replaying it on the vLLM tiers."""
    from benchmarks import agent_trace

    load = info["loads"]["pipeline"]
    load.users, load.duration_s, load.max_tokens, load.api_key = users, duration_s, max_tokens, api_key
    since = time.time()
    step = run_locust(load, out / "raw" / "trace-capture", seed=7)
    until = time.time() + 1.0
    progress(f"capture: {step['completed_in_window']} pipeline runs in {duration_s:g} s at {users} users")
    tiers = info["tiers"]
    prompts = agent_trace.agent_system_prompts()
    shared = {t: agent_trace.measure_shared_prefix(tiers[t]["url"], tiers[t]["model"], prompts[t])
              for t in tiers}
    runs = agent_trace.build_runs(agent_trace.read_events(Path(info["log"])), since, until)
    trace_dir = out / "trace"
    models = {t: tiers[t]["model"] for t in tiers}
    summary = agent_trace.write_trace(runs, trace_dir, models, agent_trace.DEFAULT_BLOCK, shared)
    progress(f"trace: {summary['runs']} runs, {summary['trace_calls']} calls -> {trace_dir / 'trace.jsonl'}")
    replay = replay_trace(trace_dir / "trace.jsonl", tiers, out / "raw" / "trace-replay", aiperf)
    return {"capture": {"users": users, "duration_s": duration_s, "locust": _row("locust", 1, step, 0.0)},
            "trace": summary, "replay": replay}


def replay_trace(trace: Path, tiers: dict, work: Path, aiperf: Path) -> dict:
    """AIPerf replays the trace on the process that serves both names (shared profile) or per tier."""
    from benchmarks import agent_trace

    rows = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines() if line.strip()]
    if tiers["agent"]["url"] == tiers["domain"]["url"]:
        plan = {"all": (trace, tiers["domain"])}
    else:
        plan = {}
        for tier, spec in tiers.items():
            part = trace.with_name(f"trace.{tier}.jsonl")
            mine = [json.dumps(r, ensure_ascii=False) + "\n" for r in rows if r["tier"] == tier]
            part.write_text("".join(mine), encoding="utf-8")
            plan[tier] = (part, spec)
    result = {}
    for name, (path, spec) in plan.items():
        base = aiperf_client.base_cmd(aiperf, spec["url"], spec["model"], spec["tokenizer"], work / name,
                                      ignore_eos=True)
        cmd = aiperf_client.replay_cmd(base, path, agent_trace.DEFAULT_BLOCK)
        export = aiperf_client.run(cmd, work / name, 900)
        part_rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        per_call = _replayed_latencies(work / name, part_rows)
        result[name] = {"command": shlex.join(cmd), "step": aiperf_client.step_from_export(export),
                        "replayed_latency_ms": per_call}
    recorded: dict[str, list[float]] = {}
    for r in rows:
        recorded.setdefault(r["tier"], []).append(r["recorded_latency_ms"])
    result["recorded_latency_ms"] = {t: _quantiles(v) for t, v in recorded.items()}
    result["trace_calls"] = len(rows)
    result["trace_span_s"] = round(rows[-1]["timestamp"] / 1000, 2) if rows else 0.0
    return result


def _quantiles(values: list[float]) -> dict:
    import numpy as np

    arr = np.asarray(values, dtype=float)
    if not arr.size:
        return {}
    return {"n": int(arr.size), "mean": round(float(arr.mean()), 1),
            "p50": round(float(np.percentile(arr, 50)), 1), "p90": round(float(np.percentile(arr, 90)), 1),
            "max": round(float(arr.max()), 1)}


def _replayed_latencies(work: Path, rows: list[dict]) -> dict:
    """AIPerf's per-request latencies by the model each request went to. A trace replay writes no inputs.json;
    its records' ``session_num`` is the trace line (each line is its own conversation, replayed in file order:
    checked by the prompt tokens, which the server counts as the line's ``input_length`` plus the chat
    template's tokens). Also that difference, per call."""
    records = work / "profile_export.jsonl"
    if not records.is_file():
        return {}
    by_model: dict[str, list[float]] = {}
    extra_tokens: list[float] = []
    for line in records.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        n = (rec.get("metadata") or {}).get("session_num")
        metrics = rec.get("metrics") or {}
        latency = metrics.get("request_latency", {}).get("value")
        if latency is None or n is None or n >= len(rows):
            continue
        by_model.setdefault(rows[n]["extra"]["model"], []).append(latency)
        isl = metrics.get("input_sequence_length", {}).get("value")
        if isl is not None:
            extra_tokens.append(isl - rows[n]["input_length"])
    out = {model: _quantiles(v) for model, v in by_model.items()}
    out["server_prompt_tokens_over_trace"] = _quantiles(extra_tokens)
    return out


# ------------------------------------------------------------------------------------------------ CLI

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("compare", "trace"):
        p = sub.add_parser(name)
        p.add_argument("--users", type=int, default=4)
        p.add_argument("--duration", type=float, default=20.0, help="seconds per client run")
        p.add_argument("--max-tokens", type=int, default=32)
        p.add_argument("--api-key", default=None, help="the pipeline's bearer key (profiles with keys)")
        p.add_argument("--aiperf", default=None, help="aiperf executable (default .venv-aiperf/bin/aiperf)")
        p.add_argument("--state", type=Path, default=None, help="stack.json (default: the running stack's)")
        p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "loadgen")
    sub.choices["compare"].add_argument("--targets", default="domain,pipeline")
    sub.choices["compare"].add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    import os

    api_key = args.api_key or os.environ.get("SUIQA_BENCH_API_KEY")
    args.out = args.out.resolve()  # AIPerf runs in its artifact folder: its input files need absolute paths
    if args.users < 1 or args.duration <= 0 or args.max_tokens < 1:
        raise SystemExit("--users, --duration and --max-tokens must be positive")
    try:
        binary = aiperf_client.aiperf_bin(args.aiperf)
    except aiperf_client.AIPerfError as exc:
        raise SystemExit(str(exc)) from None
    info = stack_loads(read_state(args.state), args.users, args.duration, args.max_tokens, api_key)
    command = "python -m benchmarks.loadgen " + shlex.join(sys.argv[1:] if argv is None else argv)
    from benchmarks.loadgen_report import write_compare, write_trace_report

    if args.cmd == "compare":
        results = {"command": command, "profile": info["profile"], "tolerance": TOLERANCE,
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "targets": []}
        for name in [t.strip() for t in args.targets.split(",") if t.strip()]:
            if name not in info["loads"]:
                raise SystemExit(f"unknown target {name!r}: domain or pipeline")
            results["targets"].append(compare_target(info["loads"][name], args.rounds, args.out, binary))
            write_json(args.out / "compare.json", results)  # partial results survive an interrupted run
        print(f"wrote {write_compare(results, args.out)}")
    else:
        result = capture_and_replay(info, args.users, args.duration, args.max_tokens, args.out, binary,
                                    api_key)
        result.update(command=command, profile=info["profile"], created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        write_json(args.out / "trace_replay.json", result)
        print(f"wrote {write_trace_report(result, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

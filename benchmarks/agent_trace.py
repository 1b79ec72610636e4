"""The pipeline's agent workload as a trace: what each run asked of the vLLM tiers, replayable by AIPerf.

    python -m benchmarks.agent_trace export --log var/logs/pipeline.jsonl --since T0 --until T1 \
        --model agent=qwen-agent --model domain=internlm2-chat-sui --shared-prefix agent=1180 --out DIR

Source: the replica's JSON log (suiqa/logs.py; ``logs_pipeline`` in ``suiqa status``), where every run leaves
``run_start``, one ``llm_call`` per upstream call (tier, the X-Request-Id it sent, latency, prompt and
completion tokens as vLLM counted them in ``usage``) and one ``step`` per ReAct step (tool, latency), all with
the run's request id and a millisecond timestamp taken when the event ended. No new instrumentation: the trace
is what a production replica already writes.

Two files per export:

- ``runs.json``: per run, its calls (tier, served model, start offset, latency, prompt/output tokens), its
  steps with the tool's own latency (the step's time less the agent call inside it: an ``ask_sui_expert`` step
  keeps its domain call, a forced ``search_knowledge`` step has no agent call) and the gaps between calls;
- ``trace.jsonl``: AIPerf's ``mooncake_trace`` format, one line per call, ordered by start: ``timestamp`` (ms
  since the first call), ``input_length``, ``output_length``, ``hash_ids`` and ``extra.model`` (the tier's
  served name, merged into the request body: one file drives both tiers of a shared vLLM process; ``--tier``
  writes one tier only for stacks whose tiers are separate servers). Fields AIPerf ignores carry the
  provenance: ``run_id``, ``tier``, ``call``, ``recorded_latency_ms``.

``hash_ids`` say which prompt blocks repeat, the only thing a replay can know of prompts it never saw: a run's
agent calls re-send the whole conversation, so call k starts with every block of call k-1's prompt; the first
call of a run on a tier starts with that tier's system prompt, shared by all runs (``--shared-prefix
TIER=TOKENS``, measured with the tier's own /tokenize: :func:`measure_shared_prefix`). Everything else is a
fresh block. Replayed at its timestamps (``--fixed-schedule``) the trace is open loop: the calls keep their
recorded arrival times even when the server answers slower than it did, which is what a fixed trace means
(Mooncake's semantics); the run's own dependency (call k+1 waits for call k and its tool) is in the gaps of
``runs.json``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_BLOCK = 16  # vLLM's KV block on CPU and the default on GPU: where its prefix cache can hit


@dataclass
class Call:
    call_id: str | None
    tier: str
    start_ms: float          # since the run started (its run_start event)
    latency_ms: float
    prompt_tokens: int
    output_tokens: int
    status: str


@dataclass
class StepRecord:
    index: int
    tool: str | None
    forced: bool
    latency_ms: float
    tool_ms: float | None    # the tool alone (None for a step that called no tool)
    error: str | None = None


@dataclass
class Run:
    run_id: str
    start: float             # epoch seconds
    latency_ms: float
    finish_reason: str | None
    calls: list[Call] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)

    def gaps_ms(self) -> list[float]:
        """Time between one call's end and the next call's start (tools, parsing, the run's own code)."""
        pairs = zip(self.calls, self.calls[1:])
        return [round(b.start_ms - (a.start_ms + a.latency_ms), 1) for a, b in pairs]


def _epoch(ts: str) -> float:
    return dt.datetime.fromisoformat(ts).timestamp()


def read_events(path: Path) -> list[dict]:
    """The log's JSON lines (a line that is not JSON, e.g. a crash's traceback, is skipped)."""
    events = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and event.get("request_id") and event.get("ts"):
                events.append(event)
    return events


def build_runs(events: list[dict], since: float | None = None, until: float | None = None) -> list[Run]:
    """Complete runs (run_start ... run_end) that started at or after ``since`` and ended by ``until``."""
    by_run: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        by_run[event["request_id"]].append(event)
    runs = []
    for run_id, evs in by_run.items():
        evs.sort(key=lambda e: e["ts"])
        start = next((e for e in evs if e.get("event") == "run_start"), None)
        end = next((e for e in evs if e.get("event") == "run_end"), None)
        if start is None or end is None:
            continue
        t0, t1 = _epoch(start["ts"]), _epoch(end["ts"])
        if (since is not None and t0 < since) or (until is not None and t1 > until):
            continue
        run = Run(run_id, t0, round((t1 - t0) * 1000, 1), end.get("finish_reason"))
        for e in evs:
            if e.get("event") == "llm_call" and e.get("prompt_tokens") is not None:
                end_ms = (_epoch(e["ts"]) - t0) * 1000
                run.calls.append(Call(e.get("call_id"), e["tier"], round(end_ms - e["latency_ms"], 1),
                                      e["latency_ms"], int(e["prompt_tokens"]),
                                      int(e.get("completion_tokens") or 0), str(e.get("status"))))
        run.calls.sort(key=lambda c: c.start_ms)
        for e in evs:
            if e.get("event") == "step":
                run.steps.append(_step(e, t0, run.calls))
        runs.append(run)
    runs.sort(key=lambda r: r.start)
    return runs


def _step(event: dict, t0: float, calls: list[Call]) -> StepRecord:
    end_ms = (_epoch(event["ts"]) - t0) * 1000
    begin_ms = end_ms - event["latency_ms"]
    agent_ms = sum(c.latency_ms for c in calls if c.tier == "agent" and c.start_ms >= begin_ms - 1
                   and c.start_ms + c.latency_ms <= end_ms + 1)
    tool = event.get("tool")
    tool_ms = round(max(0.0, event["latency_ms"] - agent_ms), 1) if tool else None
    return StepRecord(event["step"], tool, bool(event.get("forced")), event["latency_ms"], tool_ms,
                      event.get("error"))


class BlockIds:
    """Hash ids of prompt blocks: a tier's shared system prompt, a run's growing conversation, new blocks."""

    def __init__(self, block: int, shared_prefix: dict[str, int]) -> None:
        self.block, self._next = block, 0
        self.shared = {tier: self._fresh(tokens // block) for tier, tokens in shared_prefix.items()}

    def _fresh(self, n: int) -> list[int]:
        ids = list(range(self._next, self._next + n))
        self._next += n
        return ids

    def for_call(self, tier: str, prompt_tokens: int, previous: tuple[list[int], int] | None) -> list[int]:
        """``previous``: (ids, prompt tokens) of this run's last call on the same tier when this prompt
        extends it. Only full blocks are shared: a partial last block is a block of another size (AIPerf
        refuses a hash id used at two sizes), and vLLM caches only full blocks anyway."""
        blocks = math.ceil(prompt_tokens / self.block)
        reused = previous[0][: previous[1] // self.block] if previous else self.shared.get(tier, [])
        reused = reused[: prompt_tokens // self.block]
        return reused + self._fresh(blocks - len(reused))


def mooncake_lines(runs: list[Run], models: dict[str, str], block: int = DEFAULT_BLOCK,
                   shared_prefix: dict[str, int] | None = None, tier: str | None = None) -> list[dict]:
    """One mooncake_trace record per call, by start time. Agent calls of a run extend the run's previous agent
    call (the conversation grows); domain calls (the draft, ``ask_sui_expert``) are conversations of their
    own."""
    ids = BlockIds(block, shared_prefix or {})
    rows = []
    for run in runs:
        last_agent: tuple[list[int], int] | None = None
        for index, call in enumerate(run.calls):
            previous = last_agent if call.tier == "agent" else None
            hash_ids = ids.for_call(call.tier, call.prompt_tokens, previous)
            if call.tier == "agent":
                last_agent = (hash_ids, call.prompt_tokens)
            rows.append({"abs_ms": run.start * 1000 + call.start_ms, "input_length": call.prompt_tokens,
                         "output_length": max(1, call.output_tokens), "hash_ids": hash_ids,
                         "extra": {"model": models.get(call.tier, call.tier)}, "run_id": run.run_id,
                         "tier": call.tier, "call": index, "recorded_latency_ms": call.latency_ms})
    rows = [r for r in rows if tier is None or r["tier"] == tier]
    rows.sort(key=lambda r: r["abs_ms"])
    t0 = rows[0]["abs_ms"] if rows else 0.0
    return [{"timestamp": int(round(r.pop("abs_ms") - t0)), **r} for r in rows]


def runs_summary(runs: list[Run]) -> dict:
    """Per-tier calls, tokens and latencies per run; tool latency per tool (means and totals)."""
    out: dict = {"runs": len(runs)}
    if not runs:
        return out
    tiers: dict[str, dict] = defaultdict(lambda: {"calls": 0, "prompt_tokens": 0, "output_tokens": 0,
                                                 "latency_ms": 0.0})
    tools: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for call in run.calls:
            t = tiers[call.tier]
            t["calls"] += 1
            t["prompt_tokens"] += call.prompt_tokens
            t["output_tokens"] += call.output_tokens
            t["latency_ms"] += call.latency_ms
        for step in run.steps:
            if step.tool and step.tool_ms is not None:
                tools[step.tool].append(step.tool_ms)
    n = len(runs)
    out["per_run"] = {tier: {"calls": round(t["calls"] / n, 2),
                             "prompt_tokens": round(t["prompt_tokens"] / n, 1),
                             "output_tokens": round(t["output_tokens"] / n, 1),
                             "mean_call_ms": round(t["latency_ms"] / t["calls"], 1) if t["calls"] else None}
                      for tier, t in sorted(tiers.items())}
    out["tools"] = {tool: {"calls": len(v), "mean_ms": round(sum(v) / len(v), 1), "max_ms": round(max(v), 1)}
                    for tool, v in sorted(tools.items())}
    out["mean_run_ms"] = round(sum(r.latency_ms for r in runs) / n, 1)
    out["span_s"] = round(max(r.start + r.latency_ms / 1000 for r in runs) - runs[0].start, 2)
    return out


def write_trace(runs: list[Run], out_dir: Path, models: dict[str, str], block: int = DEFAULT_BLOCK,
                shared_prefix: dict[str, int] | None = None, tier: str | None = None) -> dict:
    """``runs.json`` + ``trace.jsonl`` (or ``trace.<tier>.jsonl``) into ``out_dir``; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {**runs_summary(runs), "block_size": block, "shared_prefix_tokens": shared_prefix or {},
               "models": models}
    doc = {"summary": summary, "runs": [{**asdict(r), "gaps_ms": r.gaps_ms()} for r in runs]}
    (out_dir / "runs.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = mooncake_lines(runs, models, block, shared_prefix, tier)
    name = f"trace.{tier}.jsonl" if tier else "trace.jsonl"
    with (out_dir / name).open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    summary["trace_file"] = name
    summary["trace_calls"] = len(lines)
    return summary


def measure_shared_prefix(base_url: str, model: str, system_text: str, timeout_s: float = 10.0) -> int:
    """Tokens of a chat that holds only ``system_text`` as its system message, by the tier's /tokenize (its
    chat template, its tokenizer): the prefix every run's first call on that tier starts with."""
    import httpx

    root = base_url.rstrip("/").removesuffix("/v1")
    body = {"model": model, "messages": [{"role": "system", "content": system_text}],
            "add_generation_prompt": False}
    response = httpx.post(f"{root}/tokenize", json=body, timeout=timeout_s)
    response.raise_for_status()
    return int(response.json()["count"])


def agent_system_prompts() -> dict[str, str]:
    """The two system prompts every run sends: the agent's (with the default tools) and the domain tier's."""
    from react_tier.react_format import system_prompt
    from react_tier.settings import AgentSettings
    from react_tier.tools import DOMAIN_SYSTEM_PROMPT, build_tools

    tools = list(build_tools(AgentSettings()).values())
    return {"agent": system_prompt(tools), "domain": DOMAIN_SYSTEM_PROMPT}


def _pairs(items: list[str], cast=str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected TIER=VALUE, got {item!r}")
        out[key] = cast(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="pipeline.jsonl -> runs.json + AIPerf mooncake trace")
    e.add_argument("--log", required=True, type=Path)
    e.add_argument("--since", type=float, default=None, help="epoch seconds: runs that started from here")
    e.add_argument("--until", type=float, default=None, help="epoch seconds: runs that ended by here")
    e.add_argument("--model", action="append", default=[], help="TIER=SERVED_NAME (repeatable)")
    e.add_argument("--shared-prefix", action="append", default=[], help="TIER=TOKENS (repeatable)")
    e.add_argument("--block-size", type=int, default=DEFAULT_BLOCK)
    e.add_argument("--tier", default=None, help="only this tier's calls (separate vLLM servers)")
    e.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    runs = build_runs(read_events(args.log), args.since, args.until)
    if not runs:
        raise SystemExit(f"no complete run in {args.log} between {args.since} and {args.until}")
    summary = write_trace(runs, args.out, _pairs(args.model), args.block_size,
                          _pairs(args.shared_prefix, int), args.tier)
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

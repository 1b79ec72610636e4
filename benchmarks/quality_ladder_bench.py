"""Grounded goodput and refusals against offered load, with and without the quality ladder, through the real Serve
app on the 2-core CPU machine.

    python -m benchmarks.quality_ladder_bench --rates 1,2,4,8 --duration 20 --out benchmarks/results/quality_ladder

Upstream: the stand-in vLLM whose agent model writes grounded, cited answers (benchmarks/answer_cache_bench.py
says why the tiny random models cannot: every tiny answer is ``degraded``); its pace (30 ms to the first token,
5 ms a token) makes a full run (48-token draft, forced search, one agent turn) ~0.5-1 s. The Serve app is the
cpu-tiny API profile with ``--in-flight`` run slots, a queue of 4x that, ``queue_timeout_s`` 10 (today's policy:
wait up to 10 s or get a 429) and the answer cache off (every request runs). Both arms run with the same
admission; the second deploys the ladder (``--ladder`` JSON; the SLO ``slo_s`` is the goodput's).

Load: open loop, Poisson arrivals at each rate for ``--duration`` seconds, distinct questions from the project's
question sets (no repeats). Per rate and arm: grounded goodput/s (200s within the SLO citing an observed source
with grounding >= 0.5), 429s/s, p50/p99 latency of the 200s, and the steps the answers ran at.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.answer_cache_bench import bench_settings, question_pool, standin_options, start_standin

LADDER = {"enabled": True, "fewer_steps_after_s": 1.0, "no_draft_after_s": 2.0, "extractive_after_s": 3.0,
          "extractive_max_in_flight": 8, "slo_s": 4.0, "min_grounding": 0.5}


async def open_loop(api: str, rate: float, duration_s: float, questions: list[str], seed: int) -> list[dict]:
    import httpx

    rng = random.Random(seed)
    rows: list[dict] = []

    async def one(client: httpx.AsyncClient, question: str) -> None:
        body = {"model": "sui-react", "messages": [{"role": "user", "content": question}]}
        started = time.perf_counter()
        try:
            resp = await client.post(f"{api}/v1/chat/completions", json=body)
        except httpx.HTTPError as exc:
            rows.append({"status": 0, "latency_s": time.perf_counter() - started, "error": type(exc).__name__})
            return
        row = {"status": resp.status_code, "latency_s": time.perf_counter() - started}
        if resp.status_code == 200:
            sui = resp.json()["sui"]
            row.update(quality=sui.get("quality"), citations=len(sui["citations"]),
                       grounding=(sui.get("grounding") or {}).get("score") or 0.0, finish=sui["finish_reason"])
        rows.append(row)

    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        tasks, start, at, i = [], time.perf_counter(), 0.0, 0
        while True:
            at += rng.expovariate(rate)
            if at > duration_s:
                break
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
            tasks.append(asyncio.create_task(one(client, questions[i % len(questions)])))
            i += 1
        await asyncio.gather(*tasks)
    return rows


def summarise(rows: list[dict], duration_s: float, slo_s: float, min_grounding: float) -> dict:
    ok = [r for r in rows if r["status"] == 200]
    grounded = [r for r in ok if r["latency_s"] <= slo_s and r["citations"] and r["grounding"] >= min_grounding]
    lat = sorted(r["latency_s"] for r in ok)
    pct = (lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 2)) if lat else (lambda p: None)
    steps: dict[str, int] = {}
    for r in ok:
        steps[r["quality"]] = steps.get(r["quality"], 0) + 1
    return {"offered": len(rows), "offered_per_s": round(len(rows) / duration_s, 2), "ok": len(ok),
            "goodput_per_s": round(len(grounded) / duration_s, 2), "refused_per_s":
            round(sum(r["status"] == 429 for r in rows) / duration_s, 2),
            "other_errors": sum(r["status"] not in (200, 429) for r in rows), "p50_s": pct(0.5), "p99_s": pct(0.99),
            "steps": steps}


def write_report(summary: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    lines = ["# Quality ladder: grounded goodput and refusals vs offered load (CPU, stand-in upstream)", "",
             f"`{summary['command']}`", "",
             f"SLO {summary['ladder']['slo_s']} s; admission {summary['config']['in_flight']} run slots, queue "
             f"{4 * summary['config']['in_flight']}, queue_timeout 10 s; ladder thresholds (expected wait, s): "
             f"fewer_steps > {summary['ladder']['fewer_steps_after_s']}, no_draft > "
             f"{summary['ladder']['no_draft_after_s']}, extractive > {summary['ladder']['extractive_after_s']}. "
             f"Ray's deployment options per arm: {json.dumps(summary.get('deployment', {}))}.", "",
             "| rate req/s | arm | offered/s | grounded goodput/s | 429/s | other errors | p50 s | p99 s | steps |",
             "|---|---|---|---|---|---|---|---|---|"]
    for rate in summary["rates"]:
        for arm in ("off", "on"):
            r = summary["results"][arm][str(rate)]
            lines.append(f"| {rate} | ladder {arm} | {r['offered_per_s']} | {r['goodput_per_s']} | "
                         f"{r['refused_per_s']} | {r['other_errors']} | {r['p50_s']} | {r['p99_s']} | "
                         f"{json.dumps(r['steps'])} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for arm, color in (("off", "grey"), ("on", "tab:green")):
        rows = [summary["results"][arm][str(rate)] for rate in summary["rates"]]
        offered = [r["offered_per_s"] for r in rows]
        axes[0].plot(offered, [r["goodput_per_s"] for r in rows], "o-", color=color, label=f"ladder {arm}")
        axes[1].plot(offered, [r["refused_per_s"] for r in rows], "o-", color=color, label=f"ladder {arm}")
    axes[0].set_title(f"grounded goodput/s (SLO {summary['ladder']['slo_s']} s)")
    axes[1].set_title("429s/s")
    for ax in axes:
        ax.set_xlabel("offered load, req/s")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "goodput_vs_load.png", dpi=110)


def main(argv: list[str] | None = None) -> int:
    from suiqa.ray_local import RAY_LOCAL_ENV

    os.environ.update(RAY_LOCAL_ENV)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="1,2,4,8")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--in-flight", type=int, default=2)
    ap.add_argument("--ladder", default=json.dumps(LADDER), help="quality_ladder settings (JSON) of the 'on' arm")
    ap.add_argument("--proxy-queue", type=int, default=None, help="Ray's max_queued_requests (default: as shipped)")
    standin_options(ap, "benchmarks/results/quality_ladder")
    args = ap.parse_args(argv)

    from benchmarks.gpu.pipeline_bench import deploy_app, start_ray
    from suiqa.net import wait_http_ok
    from suiqa.paths import logs_dir

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ladder = json.loads(args.ladder)
    rates = [float(r) for r in args.rates.split(",")]
    pool, _ = question_pool()
    standin = start_standin(args.port, args.ttft_ms, args.itl_ms, logs_dir() / "standin.log")  # not a result
    command = "python -m benchmarks.quality_ladder_bench " + " ".join(sys.argv[1:] if argv is None else argv)
    summary = {"command": command, "rates": rates, "ladder": ladder, "config": vars(args), "results": {},
               "deployment": {}}
    try:
        from react_tier.knowledge import KnowledgeBase

        address = start_ray({"ray_port": 6390, "ray_num_cpus": 4, "ray_metrics_export_port": 8090})
        offset = 0
        for arm in ("off", "on"):
            base = bench_settings(args.port, args.in_flight)
            # Ray's proxy queue as shipped (max_queued_requests = max_in_flight) unless --proxy-queue: unbounded
            # (-1), nothing beyond max_ongoing_requests is refused and the queue grows without limit
            deployment = {**base.agent_deployment.model_dump(), "max_queued_requests": args.proxy_queue}
            settings = base.model_validate({**base.model_dump(), "answer_cache": {"enabled": False},
                                            "agent_deployment": deployment,
                                            "admission": {**base.admission.model_dump(), "queue_timeout_s": 10},
                                            "quality_ladder": ladder if arm == "on" else {"enabled": False}})
            KnowledgeBase.load(settings.agent.knowledge)
            options = settings.deployment_options()
            summary["deployment"][arm] = {k: options[k] for k in ("max_ongoing_requests", "max_queued_requests")}
            deploy_app(address, settings)
            api = f"http://127.0.0.1:{settings.port}"
            wait_http_ok(f"{api}/ready", 300)
            asyncio.run(open_loop(api, 2.0, 5.0, pool[-50:], seed=99))  # warm-up: the admission's mean run time
            summary["results"][arm] = {}
            for rate in rates:
                questions = pool[offset:] + pool[:offset]
                rows = asyncio.run(open_loop(api, rate, args.duration, questions, seed=int(rate * 10)))
                offset = (offset + len(rows)) % len(pool)
                row = summarise(rows, args.duration, ladder["slo_s"], ladder["min_grounding"])
                summary["results"][arm][str(rate)] = row
                print(json.dumps({"arm": arm, "rate": rate, **row}, ensure_ascii=False), flush=True)
                time.sleep(3)  # let the queue drain between rates
    finally:
        subprocess.run(["ray", "stop"], capture_output=True, check=False)
        standin.terminate()
        standin.wait(timeout=10)
    write_report(summary, out)
    print(f"wrote {out}/report.md", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

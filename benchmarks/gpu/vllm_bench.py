"""vLLM's own client (``vllm bench serve``) as the independent reference, and its agreement with the Locust runner.

    python -m benchmarks.gpu.vllm_bench run --base-url http://127.0.0.1:8000 --endpoint /v1/completions \
        --backend vllm --model internlm2-chat-sui --tokenizer /tmp/models/domain-llama --concurrency 1024 \
        --num-prompts 1000 --clients 4 --input-len 256 --output-len 256 --seed 1 --out DIR --name n4-pass1
    python -m benchmarks.gpu.vllm_bench compare --vllm DIR/n4-c256.json --locust RUNNER_OUT --users 256

``run`` starts ``--clients`` processes of ``vllm bench serve`` in parallel (one process tops out near 25k output
tok/s, ../shared/gpu/README.md), each with its share of the concurrency and prompts and its own seed, so prompts
never repeat across clients or passes (a repeated prompt would hit vLLM's prefix cache and skip its prefill). It
merges their per-request data (``--save-detailed``) into one JSON: req/s and output tok/s over the longest client's
duration, TTFT and E2E percentiles over all requests.

TTFT is defined as in the Locust runner (time to the first chunk carrying output). For ``/v1/completions`` that is
vLLM's own TTFT. For the pipeline's chat endpoint vLLM's client stamps TTFT at the first chunk with ``choices``,
which is the pipeline's role-only opening chunk (sent before any work); the answer's TTFT is that plus the first
inter-chunk gap (``ttft + itl[0]``), and ``compare`` uses it.

``compare`` checks the two clients on one target and concurrency: |Δ| <= 10% on req/s and TTFT p50, or it says
which metric disagrees and by how much. Only the standard library and numpy: it runs on the GPU machine as is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TOLERANCE = 0.10
REPO = Path(__file__).resolve().parents[2]


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _dist_ms(values_s: list[float]) -> dict | None:
    if not values_s:
        return None
    ms = [v * 1000.0 for v in values_s]
    return {"mean": float(np.mean(ms)), "p50": _pct(ms, 50), "p95": _pct(ms, 95), "p99": _pct(ms, 99),
            "max": float(max(ms)), "n": len(ms)}


def merge(results: list[dict], chat: bool) -> dict:
    """One summary from the detailed result JSONs of parallel clients."""
    duration = max(r["duration"] for r in results)
    ttft, answer_ttft, e2e, out_tokens = [], [], [], 0
    completed = failed = 0
    for r in results:
        completed += r["completed"]
        failed += r.get("failed", 0) or 0
        out_tokens += r["total_output_tokens"]
        for t, itl, err in zip(r["ttfts"], r["itls"], r["errors"]):
            if err or not t:
                continue
            ttft.append(t)
            answer_ttft.append(t + (itl[0] if chat and itl else 0.0))
            e2e.append(t + sum(itl or ()))
    return {"clients": len(results), "duration_s": duration, "completed": completed, "failed": failed,
            "req_s": completed / duration, "output_tok_s": out_tokens / duration,
            "output_tokens_per_request": out_tokens / completed if completed else None,
            "ttft_ms": _dist_ms(answer_ttft), "first_chunk_ms": _dist_ms(ttft), "e2e_ms": _dist_ms(e2e),
            "per_client": [{k: r.get(k) for k in ("duration", "completed", "failed", "request_throughput",
                                                  "output_throughput", "median_ttft_ms", "p99_ttft_ms")}
                           for r in results]}


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    k = max(1, min(args.clients, args.concurrency))
    procs = []
    for i in range(k):
        share_c = args.concurrency // k + (1 if i < args.concurrency % k else 0)
        share_n = args.num_prompts // k + (1 if i < args.num_prompts % k else 0)
        cmd = [sys.executable, "-m", "benchmarks.vllm_bench_serve", "--backend", args.backend,
               "--base-url", args.base_url, "--endpoint", args.endpoint, "--model", args.model,
               "--tokenizer", args.tokenizer, "--max-concurrency", str(share_c), "--num-prompts", str(share_n),
               "--request-rate", "inf", "--seed", str(args.seed * 1000 + i), "--disable-tqdm",
               "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
               "--save-result", "--save-detailed", "--result-dir", str(raw), "--result-filename",
               f"{args.name}-{i}.json", "--ready-check-timeout-sec", "0"]
        if getattr(args, "ignore_eos", True):
            cmd.append("--ignore-eos")
        if getattr(args, "temperature", None) is not None:  # unset: the server's default (vLLM's: 1.0)
            cmd += ["--temperature", str(args.temperature)]
        if args.dataset_jsonl:
            cmd += ["--dataset-name", "custom", "--dataset-path", args.dataset_jsonl, "--custom-output-len",
                    str(args.output_len), "--skip-chat-template"]
        else:
            cmd += ["--dataset-name", "random", "--random-input-len", str(args.input_len),
                    "--random-output-len", str(args.output_len)]
        log = (raw / f"{args.name}-{i}.log").open("w")
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO), log, cmd))
    started = time.time()
    codes = []
    for proc, log, _ in procs:
        try:
            codes.append(proc.wait(timeout=args.timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(-9)
        log.close()
    results, errors = [], []
    for i, code in enumerate(codes):
        path = raw / f"{args.name}-{i}.json"
        if code == 0 and path.is_file():
            results.append(json.loads(path.read_text()))
        else:
            tail = (raw / f"{args.name}-{i}.log").read_text(errors="replace").strip().splitlines()[-5:]
            errors.append({"client": i, "exit": code, "log_tail": tail})
    summary = {"name": args.name, "client": "vllm bench serve", "target": args.base_url + args.endpoint,
               "backend": args.backend, "concurrency": args.concurrency, "num_prompts": args.num_prompts,
               "input_len": None if args.dataset_jsonl else args.input_len, "output_len": args.output_len,
               "dataset": args.dataset_jsonl or "random", "wall_s": round(time.time() - started, 2),
               "command": " ".join(procs[0][2]) if procs else "", "status": "ok" if results and not errors
               else "FAILED", "errors": errors}
    if results:
        summary.update(merge(results, chat=args.backend == "openai-chat"))
    if not args.keep_detailed:
        for path in raw.glob(f"{args.name}-*.json"):
            path.unlink()
    (out / f"{args.name}.json").write_text(json.dumps(summary, indent=2))
    line = (f"{args.name}: {summary['status']} c={args.concurrency} req/s={summary.get('req_s', 0):.2f} "
            f"out tok/s={summary.get('output_tok_s', 0):.0f}")
    if summary.get("ttft_ms"):
        line += (f" TTFT p50/p99={summary['ttft_ms']['p50']:.0f}/{summary['ttft_ms']['p99']:.0f} ms "
                 f"E2E p50/p99={summary['e2e_ms']['p50']:.0f}/{summary['e2e_ms']['p99']:.0f} ms "
                 f"failed={summary['failed']}")
    print(line, errors[:1] if errors else "", flush=True)
    return summary


def compare(vllm_summary: dict, locust_step: dict, tolerance: float = TOLERANCE) -> dict:
    """Agreement of the two clients on req/s and TTFT p50 (relative difference against vLLM's client)."""
    rows = {}
    for metric, v, lo in (("req_s", vllm_summary.get("req_s"), locust_step.get("req_s")),
                          ("ttft_p50_ms", (vllm_summary.get("ttft_ms") or {}).get("p50"),
                           (locust_step.get("ttft_ms") or {}).get("p50"))):
        if not v or lo is None:
            rows[metric] = {"vllm": v, "locust": lo, "diff": None, "agree": False}
            continue
        diff = (lo - v) / v
        rows[metric] = {"vllm": round(v, 3), "locust": round(lo, 3), "diff": round(diff, 4),
                        "agree": abs(diff) <= tolerance}
    return {"tolerance": tolerance, "metrics": rows, "agree": all(r["agree"] for r in rows.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--base-url", required=True)
    r.add_argument("--endpoint", default="/v1/completions")
    r.add_argument("--backend", default="vllm", choices=["vllm", "openai", "openai-chat"])
    r.add_argument("--model", required=True)
    r.add_argument("--tokenizer", required=True)
    r.add_argument("--concurrency", type=int, required=True)
    r.add_argument("--num-prompts", type=int, required=True)
    r.add_argument("--clients", type=int, default=1)
    r.add_argument("--input-len", type=int, default=256)
    r.add_argument("--output-len", type=int, default=256)
    r.add_argument("--dataset-jsonl", default=None, help="custom dataset ({'prompt': ...} lines) instead of random")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--temperature", type=float, default=None, help="sent on every request (default: none)")
    r.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false",
                   help="do not send ignore_eos (the pipeline's answers end where the agent ends them)")
    r.add_argument("--timeout", type=float, default=300)
    r.add_argument("--keep-detailed", action="store_true")
    r.add_argument("--name", required=True)
    r.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--vllm", required=True, help="a `run` summary JSON")
    c.add_argument("--locust", required=True, help="benchmarks.runner output folder or summary.json")
    c.add_argument("--users", type=int, required=True)
    c.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.cmd == "run":
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        return 0 if run(args)["status"] == "ok" else 1
    locust = Path(args.locust)
    locust_summary = json.loads((locust / "summary.json" if locust.is_dir() else locust).read_text())
    step = next(s for s in locust_summary["steps"] if s["users"] == args.users)
    result = compare(json.loads(Path(args.vllm).read_text()), step)
    result.update(vllm=args.vllm, locust=str(args.locust), users=args.users)
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

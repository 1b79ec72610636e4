"""A bounded soak of the running pipeline API: ``concurrency`` clients send chat requests (half streamed) for
``duration_s``; every response is recorded (status, error type, latency, sui.finish_reason) and every process of
the stack (vLLM servers and their engine/worker processes, the Ray daemons, the Serve proxy/controller/replicas)
has its RSS sampled every ``sample_s`` with psutil. Output (``out``): records.csv, rss.csv, summary.json (errors by
type, latency per minute, RSS first/last/max per process and its growth) and soak.png (latency over time, RSS over
time).

Usage (the stack must be up; the run holds it for ``duration_s``):
    flock /tmp/suiqa-stack.lock python -m benchmarks.soak.run --url http://127.0.0.1:8080 --duration-s 600

Why a soak besides the Locust sweeps: sweeps last a minute per step and report throughput; a leak (RSS that only
grows), a slow drift in latency, or errors that only come with time (a full queue, file descriptors, a breaker
that never closes) need one steady load for many minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import re
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import psutil

MARKS = ("vllm.entrypoints", "VLLM::", "ray::", "raylet", "gcs_server", "ray/_private", "ray/dashboard",
         "ray/autoscaler", "default_worker.py")
QUESTIONS = ["隋朝是哪一年建立的？", "隋炀帝开凿大运河的目的是什么？", "隋文帝推行了哪些制度？", "科举制度始于何时？",
             "隋朝为什么灭亡？", "杨素是谁？"]


WRAPPERS = ("flock", "bash", "sh", "timeout", "grep")  # shells whose command line merely mentions the stack


def label(cmd: str) -> str:
    """A stable short name: vLLM's API server with its port, Ray actors without the method they run now."""
    name = cmd.split()[0].rsplit("/", 1)[-1]
    if "vllm.entrypoints" in cmd:
        args = cmd.split()
        port = args[args.index("--port") + 1] if "--port" in args[:-1] else "?"
        return f"vllm-api-server:{port}"
    if cmd.startswith(("ray::", "VLLM::")):
        return re.sub(r"^(ray::[^.\s]+)\..*$", r"\1", cmd.split()[0])
    return name


def stack_processes() -> dict[int, str]:
    """pid -> short name of every process that belongs to a local stack (vLLM, Ray). Run under the stack lock:
    another session's stack would be counted too (exclude it with --exclude-pids when re-summarising)."""
    found = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or []) or proc.info["name"] or ""
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        first = cmd.split()[0].rsplit("/", 1)[-1] if cmd.split() else ""
        if any(m in cmd for m in MARKS) and "benchmarks.soak" not in cmd and first not in WRAPPERS:
            found[proc.info["pid"]] = label(cmd)
    return found


async def sample_rss(stop: asyncio.Event, every_s: float, started: float, rows: list[dict]) -> None:
    while not stop.is_set():
        t = time.monotonic() - started
        for pid, name in stack_processes().items():
            try:
                rows.append({"t": round(t, 1), "pid": pid, "name": name,
                             "rss_mb": round(psutil.Process(pid).memory_info().rss / 2**20, 1)})
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            pass


async def client_loop(i: int, http: httpx.AsyncClient, until: float, started: float, model: str,
                      max_tokens: int, rows: list[dict]) -> None:
    n = 0
    while time.monotonic() < until:
        stream = (i + n) % 2 == 1
        body = {"model": model, "messages": [{"role": "user", "content": QUESTIONS[(i + n) % len(QUESTIONS)]}],
                "max_tokens": max_tokens, "stream": stream}
        t0 = time.monotonic()
        row = {"t": round(t0 - started, 2), "client": i, "stream": stream, "status": 0, "error": "",
               "finish": "", "latency_s": 0.0}
        try:
            if stream:
                async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
                    row["status"] = resp.status_code
                    data = [line.removeprefix("data: ") async for line in resp.aiter_lines()
                            if line.startswith("data: ")]
                    if resp.status_code == 200:
                        events = [json.loads(d) for d in data if d != "[DONE]"]
                        if any("error" in e for e in events):  # OpenAI-style in-band error event
                            row["error"] = "in-band error"
                        elif data[-1:] != ["[DONE]"]:
                            row["error"] = "stream cut"
                        row["finish"] = next((e["sui"]["finish_reason"] for e in reversed(events) if "sui" in e), "")
                    else:
                        row["error"] = f"HTTP {resp.status_code}"
            else:
                resp = await http.post("/v1/chat/completions", json=body)
                row["status"] = resp.status_code
                if resp.status_code == 200:
                    row["finish"] = (resp.json().get("sui") or {}).get("finish_reason", "")
                else:
                    row["error"] = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            row["error"] = type(exc).__name__
        row["latency_s"] = round(time.monotonic() - t0, 3)
        rows.append(row)
        n += 1
        if row["status"] in (429, 503):
            await asyncio.sleep(1.0)  # a polite client honours Retry-After


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarize(records: list[dict], rss: list[dict], args: argparse.Namespace) -> dict:
    ok = [r for r in records if r["status"] == 200 and not r["error"]]
    errors = Counter(r["error"] for r in records if r["error"])
    per_minute = defaultdict(list)
    for r in ok:
        per_minute[int(r["t"] // 60)].append(r["latency_s"])
    by_proc = defaultdict(list)
    for s in rss:
        by_proc[(s["pid"], s["name"])].append((s["t"], s["rss_mb"]))
    procs = []
    for (pid, name), series in sorted(by_proc.items(), key=lambda kv: -max(v for _, v in kv[1])):
        first, last = series[0][1], series[-1][1]
        procs.append({"pid": pid, "name": name, "first_mb": first, "last_mb": last,
                      "max_mb": max(v for _, v in series), "growth_mb": round(last - first, 1), "samples": len(series)})
    latencies = [r["latency_s"] for r in ok]
    return {
        "url": args.url, "duration_s": args.duration_s, "concurrency": args.concurrency, "max_tokens": args.max_tokens,
        "requests": len(records), "ok": len(ok), "errors_by_type": dict(errors),
        "status_counts": dict(Counter(str(r["status"]) for r in records)),
        "finish_reasons": dict(Counter(r["finish"] for r in ok)),
        "latency_s": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95),
                      "p99": percentile(latencies, 0.99), "max": max(latencies, default=0.0),
                      "mean": round(statistics.fmean(latencies), 3) if latencies else 0.0},
        "latency_per_minute": {m: {"n": len(v), "p50": percentile(v, 0.5), "p95": percentile(v, 0.95)}
                               for m, v in sorted(per_minute.items())},
        "rss_total_mb": {"first": round(sum(p["first_mb"] for p in procs), 1),
                         "last": round(sum(p["last_mb"] for p in procs), 1)},
        "processes": procs,
    }


def plot(records: list[dict], rss: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    for label, colour, pick in (("200", "tab:blue", lambda r: r["status"] == 200 and not r["error"]),
                                ("error", "tab:red", lambda r: bool(r["error"]))):
        pts = [r for r in records if pick(r)]
        ax1.scatter([r["t"] for r in pts], [r["latency_s"] for r in pts], s=6, c=colour, label=label, alpha=0.6)
    windows = defaultdict(list)
    for r in records:
        if r["status"] == 200 and not r["error"]:
            windows[int(r["t"] // 30) * 30 + 15].append(r["latency_s"])
    xs = sorted(windows)
    ax1.plot(xs, [percentile(windows[x], 0.5) for x in xs], "k-", label="p50 (30 s)")
    ax1.plot(xs, [percentile(windows[x], 0.95) for x in xs], "k--", label="p95 (30 s)")
    ax1.set_ylabel("latency (s)")
    ax1.legend(loc="upper right")
    ax1.set_title("soak: latency per request and RSS per process over time")
    series = defaultdict(list)
    for s in rss:
        series[f"{s['name']} ({s['pid']})"].append((s["t"], s["rss_mb"]))
    for name, pts in sorted(series.items(), key=lambda kv: -max(v for _, v in kv[1]))[:12]:
        ax2.plot([t for t, _ in pts], [v for _, v in pts], label=name[:48])
    ax2.set_ylabel("RSS (MiB)")
    ax2.set_xlabel("time since start (s)")
    if series:  # no RSS samples (a run without the stack's processes): no legend to draw
        ax2.legend(fontsize=6, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=110)


async def soak(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    records: list[dict] = []
    rss: list[dict] = []
    started = time.monotonic()
    until = started + args.duration_s
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=args.concurrency + 2)
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=args.timeout_s, limits=limits) as http:
        sampler = asyncio.create_task(sample_rss(stop, args.sample_s, started, rss))
        await asyncio.gather(*(client_loop(i, http, until, started, args.model, args.max_tokens, records)
                               for i in range(args.concurrency)))
        stop.set()
        await sampler
    for name, rows in (("records.csv", records), ("rss.csv", rss)):
        if rows:
            with (out / name).open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    summary = summarize(records, rss, args)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    plot(records, rss, out)
    return summary


def resummarize(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    excluded = {int(p) for p in args.exclude_pids.split(",") if p.strip()}
    with (out / "records.csv").open(encoding="utf-8") as fh:
        records = [{**r, "t": float(r["t"]), "status": int(r["status"]), "latency_s": float(r["latency_s"]),
                    "stream": r["stream"] == "True"} for r in csv.DictReader(fh)]
    with (out / "rss.csv").open(encoding="utf-8") as fh:
        rss = [{**r, "t": float(r["t"]), "pid": int(r["pid"]), "rss_mb": float(r["rss_mb"]),
                "name": label(r["name"])} for r in csv.DictReader(fh) if int(r["pid"]) not in excluded]
    summary = summarize(records, rss, args)
    summary["excluded_pids"] = sorted(excluded)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    plot(records, rss, out)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--api-key", default=None, help="Bearer key (or env SUIQA_SOAK_API_KEY)")
    parser.add_argument("--model", default="sui-react")
    parser.add_argument("--duration-s", type=float, default=600)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--timeout-s", type=float, default=130)
    parser.add_argument("--sample-s", type=float, default=5)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "soak" / "cpu"))
    parser.add_argument("--from-csv", action="store_true",
                        help="Do not load the API: rebuild summary.json and soak.png from OUT's CSVs.")
    parser.add_argument("--exclude-pids", default="", help="With --from-csv: comma-separated pids to leave out.")
    args = parser.parse_args(argv)
    import os

    args.api_key = args.api_key or os.environ.get("SUIQA_SOAK_API_KEY")
    summary = resummarize(args) if args.from_csv else asyncio.run(soak(args))
    brief = {k: summary[k] for k in ("requests", "ok", "errors_by_type", "status_counts", "latency_s",
                                     "rss_total_mb")}
    print(json.dumps(brief, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()

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

from benchmarks.openai_stream import retry_after_s

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
    """RSS and CPU% (of one core, since the previous sample) of every stack process, every ``every_s``."""
    procs: dict[int, psutil.Process] = {}
    while not stop.is_set():
        t = time.monotonic() - started
        for pid, name in stack_processes().items():
            try:
                proc = procs.setdefault(pid, psutil.Process(pid))
                cpu = proc.cpu_percent()  # 0.0 at a process's first sample
                rows.append({"t": round(t, 1), "pid": pid, "name": name,
                             "rss_mb": round(proc.memory_info().rss / 2**20, 1), "cpu_pct": round(cpu, 1)})
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            pass


async def watch_loop_lag(stop_at: float, lags_ms: list[float], every_s: float = 0.1) -> None:
    """How late this client process's event loop wakes up: the part of every latency it measured that is its own."""
    while time.monotonic() < stop_at:
        t0 = time.monotonic()
        await asyncio.sleep(every_s)
        lags_ms.append((time.monotonic() - t0 - every_s) * 1000)


async def client_loop(i: int, http: httpx.AsyncClient, until: float, started: float, model: str,
                      max_tokens: int, rows: list[dict]) -> None:
    n = 0
    while time.monotonic() < until:
        stream = (i + n) % 2 == 1
        body = {"model": model, "messages": [{"role": "user", "content": QUESTIONS[(i + n) % len(QUESTIONS)]}],
                "max_tokens": max_tokens, "stream": stream}
        t0 = time.monotonic()
        row = {"t": round(t0 - started, 2), "client": i, "stream": stream, "status": 0, "error": "",
               "finish": "", "latency_s": 0.0, "retry_after": ""}
        try:
            if stream:
                async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
                    row["status"], row["retry_after"] = resp.status_code, resp.headers.get("retry-after", "")
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
                row["status"], row["retry_after"] = resp.status_code, resp.headers.get("retry-after", "")
                if resp.status_code == 200:
                    row["finish"] = (resp.json().get("sui") or {}).get("finish_reason", "")
                else:
                    row["error"] = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            row["error"] = type(exc).__name__
        row["latency_s"] = round(time.monotonic() - t0, 3)
        rows.append(row)
        n += 1
        if row["status"] in (429, 503):  # a polite client honours Retry-After (1 s when it is missing)
            await asyncio.sleep(retry_after_s(row["retry_after"], default=1.0))


async def probe_health(url: str, until: float, every_s: float, started: float, rows: list[dict]) -> None:
    """GET /health every ``every_s`` until ``until``, from a process of its own (its own connection and event loop):
    the probe an orchestrator sends must stay fast, and the load's client must not be what makes it slow."""
    await asyncio.sleep(max(0.0, started - time.monotonic()))
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while time.monotonic() < until:
            t0 = time.monotonic()
            try:
                status = (await http.get("/health")).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            rows.append({"t": round(t0 - started, 2), "status": status,
                         "latency_s": round(time.monotonic() - t0, 4)})
            await asyncio.sleep(max(0.0, every_s - (time.monotonic() - t0)))


async def client_group(first: int, count: int, args: argparse.Namespace, started: float, until: float) -> dict:
    """``count`` clients (numbered from ``first``) on one connection pool and event loop."""
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    rows: list[dict] = []
    lags: list[float] = []
    limits = httpx.Limits(max_connections=count + 1)
    await asyncio.sleep(max(0.0, started - time.monotonic()))
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=args.timeout_s, limits=limits) as http:
        await asyncio.gather(watch_loop_lag(until, lags),
                             *(client_loop(i, http, until, started, args.model, args.max_tokens, rows)
                               for i in range(first, first + count)))
    return {"rows": rows, "lags_ms": lags}


# Entry points of the spawned processes (CLOCK_MONOTONIC is one clock for every process of the machine).
def _health_process(args: argparse.Namespace, started: float, until: float) -> list[dict]:
    rows: list[dict] = []
    asyncio.run(probe_health(args.url, until, args.health_every_s, started, rows))
    return rows


def _clients_process(first: int, count: int, args: argparse.Namespace, started: float, until: float) -> dict:
    return asyncio.run(client_group(first, count, args, started, until))


def latency_stats(values: list[float]) -> dict:
    return {"n": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
            "max": max(values, default=0.0)}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarize(records: list[dict], rss: list[dict], args: argparse.Namespace,
              health: list[dict] | None = None) -> dict:
    ok = [r for r in records if r["status"] == 200 and not r["error"]]
    errors = Counter(r["error"] for r in records if r["error"])
    per_minute = defaultdict(list)
    for r in ok:
        per_minute[int(r["t"] // 60)].append(r["latency_s"])
    by_proc = defaultdict(list)
    cpu_by_proc = defaultdict(list)
    for s in rss:
        by_proc[(s["pid"], s["name"])].append((s["t"], s["rss_mb"]))
        cpu_by_proc[(s["pid"], s["name"])].append(float(s["cpu_pct"]) if s.get("cpu_pct") not in (None, "") else None)
    procs = []
    for (pid, name), series in sorted(by_proc.items(), key=lambda kv: -max(v for _, v in kv[1])):
        first, last = series[0][1], series[-1][1]
        cpu = [c for c in cpu_by_proc[(pid, name)][1:] if c is not None]  # the first sample has no interval
        procs.append({"pid": pid, "name": name, "first_mb": first, "last_mb": last,
                      "max_mb": max(v for _, v in series), "growth_mb": round(last - first, 1), "samples": len(series),
                      "cpu_pct_mean": round(statistics.fmean(cpu), 1) if cpu else None,
                      "cpu_pct_max": max(cpu) if cpu else None})
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
        # load shed: how fast a refusal came back and whether it said when to retry
        "shed_429": {**latency_stats([r["latency_s"] for r in records if r["status"] == 429]),
                     "with_retry_after": sum(1 for r in records if r["status"] == 429 and r.get("retry_after"))},
        "health_probe": ({**latency_stats([h["latency_s"] for h in health]),
                          "not_200": sum(1 for h in health if h["status"] != 200)} if health else None),
        "rss_total_mb": {"first": round(sum(p["first_mb"] for p in procs), 1),
                         "last": round(sum(p["last_mb"] for p in procs), 1)},
        "processes": procs,
    }


def plot(records: list[dict], rss: list[dict], out: Path, health: list[dict] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    for label, colour, pick in (("200", "tab:blue", lambda r: r["status"] == 200 and not r["error"]),
                                ("error", "tab:red", lambda r: bool(r["error"]) and r["status"] != 429)):
        pts = [r for r in records if pick(r)]
        ax1.scatter([r["t"] for r in pts], [r["latency_s"] for r in pts], s=6, c=colour, label=label, alpha=0.6)
    windows = defaultdict(list)
    for r in records:
        if r["status"] == 200 and not r["error"]:
            windows[int(r["t"] // 30) * 30 + 15].append(r["latency_s"])
    xs = sorted(windows)
    ax1.plot(xs, [percentile(windows[x], 0.5) for x in xs], "k-", label="p50 (30 s)")
    ax1.plot(xs, [percentile(windows[x], 0.95) for x in xs], "k--", label="p95 (30 s)")
    shed = [r for r in records if r["status"] == 429]
    if shed:
        ax1.scatter([r["t"] for r in shed], [r["latency_s"] for r in shed], s=6, c="tab:orange", label="429",
                    alpha=0.6)
    if health:
        ax1.plot([h["t"] for h in health], [h["latency_s"] for h in health], c="tab:green", lw=0.8,
                 label="GET /health")
    ax1.set_yscale("log")  # 429s and probes answer in milliseconds, agent runs in seconds
    ax1.set_ylabel("latency (s, log)")
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
    """The clients run in ``args.processes`` spawned processes (one event loop each, whose lag is recorded: a
    latency is only as good as the client's loop), /health is probed from one more, RSS/CPU sampled here."""
    import concurrent.futures
    import multiprocessing

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rss: list[dict] = []
    started = time.monotonic() + 2.0  # every process starts its clock together, after spawning
    until = started + args.duration_s
    stop = asyncio.Event()
    n = max(1, min(args.processes, args.concurrency))
    groups = [(i * args.concurrency // n, (i + 1) * args.concurrency // n - i * args.concurrency // n)
              for i in range(n)]
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(n + 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [loop.run_in_executor(pool, _health_process, args, started, until)]
        futures += [loop.run_in_executor(pool, _clients_process, first, count, args, started, until)
                    for first, count in groups]
        sampler = asyncio.create_task(sample_rss(stop, args.sample_s, started, rss))
        results = await asyncio.gather(*futures)
        stop.set()
        await sampler
    health = results[0]
    records = sorted((r for res in results[1:] for r in res["rows"]), key=lambda r: r["t"])
    lags = [v for res in results[1:] for v in res["lags_ms"]]
    client_lag = {"processes": n, "p50_ms": round(percentile(lags, 0.5), 1),
                  "p99_ms": round(percentile(lags, 0.99), 1), "max_ms": round(max(lags, default=0.0), 1)}
    for name, rows in (("records.csv", records), ("rss.csv", rss), ("health.csv", health)):
        if rows:
            with (out / name).open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    summary = summarize(records, rss, args, health)
    summary["client_loop_lag"] = client_lag
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    plot(records, rss, out, health)
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
    health = None
    if (out / "health.csv").is_file():
        with (out / "health.csv").open(encoding="utf-8") as fh:
            health = [{"t": float(h["t"]), "status": int(h["status"]) if h["status"].isdigit() else h["status"],
                       "latency_s": float(h["latency_s"])} for h in csv.DictReader(fh)]
    summary = summarize(records, rss, args, health)
    summary["excluded_pids"] = sorted(excluded)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    plot(records, rss, out, health)
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
    parser.add_argument("--health-every-s", type=float, default=1.0)
    parser.add_argument("--processes", type=int, default=1, help="client processes (the clients are split)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "soak" / "cpu"))
    parser.add_argument("--from-csv", action="store_true",
                        help="Do not load the API: rebuild summary.json and soak.png from OUT's CSVs.")
    parser.add_argument("--exclude-pids", default="", help="With --from-csv: comma-separated pids to leave out.")
    args = parser.parse_args(argv)
    import os

    args.api_key = args.api_key or os.environ.get("SUIQA_SOAK_API_KEY")
    summary = resummarize(args) if args.from_csv else asyncio.run(soak(args))
    brief = {k: summary.get(k) for k in ("requests", "ok", "errors_by_type", "status_counts", "latency_s",
                                         "shed_429", "health_probe", "client_loop_lag", "rss_total_mb")}
    print(json.dumps(brief, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""What a torch-profiler trace of a vLLM engine says about its step loop: GPU busy, CUDA API waits, host work.

    python -m benchmarks.gpu.trace_summary /tmp/vtrace --json $R/trace/agent.json

Issue 24: the agent engine core's step loop is 84-100 % "busy" in a Python sampler (benchmarks/gpu/sampler), and the
largest self-time lines are host-to-device copies (lease 3 of 2026-12-07). A copy that waits for the stream looks
busy to a sampler, so the sampler cannot tell CPU work from GPU waits. vLLM writes a torch-profiler trace of its
engine between ``POST /start_profile`` and ``/stop_profile`` when started with ``--profiler-config
'{"profiler": "torch", "torch_profiler_dir": DIR}'``; this reads those Chrome-format traces (``*.json`` or
``*.json.gz``) and reports, over the traced window:

- ``gpu_busy``: the union of the GPU's kernel and copy intervals over the window (what NVML's utilisation
  approximates, measured);
- ``cuda_api``: time in each CUDA runtime/driver call, and ``waits``: the synchronising ones (stream/event/device
  synchronize, and copies, which block when pageable or behind queued work);
- ``host``: per thread, the union of its CPU op and Python function intervals: the busiest thread is the step loop.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import defaultdict
from pathlib import Path

GPU_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}
API_CATS = {"cuda_runtime", "cuda_driver"}
HOST_CATS = {"cpu_op", "python_function", "user_annotation"}
WAITS = ("Synchronize", "Memcpy", "memcpy")  # cudaStreamSynchronize, cudaEventSynchronize, cudaMemcpyAsync ...


def load_events(path: Path) -> list[dict]:
    """The complete ('X') events of one trace file, or of every trace in a folder."""
    files = sorted(p for p in path.rglob("*") if p.name.endswith((".json", ".json.gz"))) if path.is_dir() else [path]
    events: list[dict] = []
    for f in files:
        opener = gzip.open if f.name.endswith(".gz") else open
        with opener(f, "rt", encoding="utf-8") as fh:
            doc = json.load(fh)
        events += [e for e in (doc.get("traceEvents", []) if isinstance(doc, dict) else doc)
                   if e.get("ph") == "X" and "dur" in e and "ts" in e]
    return events


def union_us(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) intervals."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def summarize(events: list[dict], top: int = 8) -> dict:
    if not events:
        raise SystemExit("no complete events in the trace: was /start_profile called while the engine ran?")
    t0 = min(e["ts"] for e in events)
    window = max(e["ts"] + e["dur"] for e in events) - t0
    gpu = [(e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") in GPU_CATS]
    api: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for e in events:
        if e.get("cat") in API_CATS:
            api[e["name"]] += e["dur"]
            calls[e["name"]] += 1
    host: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for e in events:
        if e.get("cat") in HOST_CATS:
            host[f"{e.get('pid')}/{e.get('tid')}"].append((e["ts"], e["ts"] + e["dur"]))
    threads = sorted(((union_us(iv), name) for name, iv in host.items()), reverse=True)
    waits = sum(v for k, v in api.items() if any(w in k for w in WAITS))
    share = (lambda us: round(us / window, 4)) if window else (lambda us: 0.0)
    return {
        "window_s": round(window / 1e6, 4),
        "gpu_busy": share(union_us(gpu)),
        "gpu_kernels": sum(1 for e in events if e.get("cat") == "kernel"),
        "cuda_api": [{"name": k, "share": share(v), "calls": calls[k]}
                     for k, v in sorted(api.items(), key=lambda kv: -kv[1])[:top]],
        "waits": share(waits),
        "host": [{"thread": name, "busy": share(us)} for us, name in threads[:3]],
    }


def brief(s: dict) -> str:
    loop = s["host"][0] if s["host"] else {"thread": "-", "busy": 0.0}
    apis = ", ".join(f"{a['name']} {a['share']:.0%}" for a in s["cuda_api"][:4])
    return (f"trace {s['window_s']} s: GPU busy {s['gpu_busy']:.0%} ({s['gpu_kernels']} kernels), busiest host "
            f"thread {loop['thread']} {loop['busy']:.0%}, CUDA API waits {s['waits']:.0%} ({apis})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace", type=Path, help="a trace file (.json / .json.gz) or vLLM's torch_profiler_dir")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    summary = summarize(load_events(args.trace))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    print(brief(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

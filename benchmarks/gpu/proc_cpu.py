"""Which processes burn the CPU during a load step: every process's CPU% over an interval (psutil), busiest first.

    python -m benchmarks.gpu.proc_cpu --seconds 5 --out cpu.json

The H200 issue saw the vLLM API servers and the Serve replicas/proxy each pinned near 100% of one core while the
GPU idled; this puts numbers on that. psutil is on the GPU image.
"""

from __future__ import annotations

import argparse
import json
import time

import psutil


def snapshot(seconds: float = 5.0, top: int = 40) -> list[dict]:
    procs = []
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            p.cpu_percent(None)
            procs.append(p)
        except psutil.Error:
            pass
    time.sleep(seconds)
    rows = []
    for p in procs:
        try:
            cpu = p.cpu_percent(None)
            cmd = " ".join(p.info["cmdline"] or [p.info["name"] or ""])
            rows.append({"pid": p.pid, "cpu_pct": round(cpu, 1), "threads": p.num_threads(), "cmd": cmd[:160]})
        except psutil.Error:
            pass
    rows.sort(key=lambda r: -r["cpu_pct"])
    return rows[:top]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = snapshot(args.seconds)
    total = sum(r["cpu_pct"] for r in rows)
    print(f"total {total:.0f}% of {psutil.cpu_count()} cores")
    for r in rows[:20]:
        print(f"{r['cpu_pct']:6.1f}%  {r['pid']:>7}  {r['cmd'][:110]}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"seconds": args.seconds, "cores": psutil.cpu_count(), "total_pct": total, "rows": rows}, fh,
                      indent=1)


if __name__ == "__main__":
    main()

"""A sudden step of load, over time (issue 24: "what happens at a step from 0 to 256 and to 1,024 clients"):
refusals, answers and the agent deployment's replicas, second by second.

    python -m benchmarks.gpu.step_load DIR [DIR ...] --out step.json --png step.png

Each DIR is a soak of benchmarks/soak/run.py started on a fresh deployment (pipeline_bench ``variant --soak``, which
is the step: from no load to its clients at once). Read back from its ``records.csv`` (one row per request: start
time, status) and ``rss.csv`` (every stack process, sampled every ``--sample-s``: a Serve replica of the agent
deployment is one ``ray::ServeReplica:<app>:SuiReAct`` process, so the count of those per sample is the replicas over
time, from the moment the autoscaler starts one). Writes per second: requests started, answered (200), refused
(429, with the Retry-After the clients honoured), other failures, and replicas; and a table per ``--bin-s``.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

REPLICA_MARK = ("ServeReplica", ":SuiReAct")  # the agent deployment's replica processes (deployments/app.py)
COUNTS = ("started", "ok", "refused", "failed")


def timeline(soak_dir: Path) -> list[dict]:
    """Per whole second of the soak: started, ok (200), refused (429), failed (anything else), replicas."""
    per_s: dict[int, dict] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    with (soak_dir / "records.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            cell = per_s[max(0, int(float(r["t"])))]
            cell["started"] += 1
            status = int(r["status"] or 0)
            cell["ok" if status == 200 and not r["error"] else "refused" if status == 429 else "failed"] += 1
    replicas: dict[int, set[str]] = defaultdict(set)
    rss = soak_dir / "rss.csv"
    if rss.is_file():
        with rss.open(encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                if all(m in r["name"] for m in REPLICA_MARK):
                    replicas[max(0, int(float(r["t"])))].add(r["pid"])  # sampled from 2 s before the step
    seconds = sorted(set(per_s) | set(replicas))
    out, last = [], None
    for t in range(seconds[0], seconds[-1] + 1) if seconds else []:
        if t in replicas:
            last = len(replicas[t])
        out.append({"t": t, **per_s.get(t, dict.fromkeys(COUNTS, 0)), "replicas": last})
    return out


def binned(rows: list[dict], bin_s: int) -> list[dict]:
    out: dict[int, dict] = {}
    for r in rows:
        start = r["t"] // bin_s * bin_s
        b = out.setdefault(start, {"t": start, **dict.fromkeys(COUNTS, 0), "replicas": None})
        for k in COUNTS:
            b[k] += r[k]
        b["replicas"] = r["replicas"] if r["replicas"] is not None else b["replicas"]
    return list(out.values())


def markdown(name: str, bins: list[dict], bin_s: int) -> str:
    lines = [f"**{name}** (per {bin_s} s)", "", "| from s | started | answered | refused (429) | failed | replicas |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {b['t']} | {b['started']} | {b['ok']} | {b['refused']} | {b['failed']} | "
              f"{'–' if b['replicas'] is None else b['replicas']} |" for b in bins]
    return "\n".join(lines)


def plot(series: dict[str, list[dict]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(series), 1, figsize=(9, 3.2 * len(series)), squeeze=False)
    for ax, (name, rows) in zip(axes[:, 0], series.items(), strict=True):
        t = [r["t"] for r in rows]
        ax.plot(t, [r["ok"] for r in rows], label="answered /s")
        ax.plot(t, [r["refused"] for r in rows], label="refused (429) /s")
        ax.plot(t, [r["failed"] for r in rows], label="failed /s")
        ax.set_title(name)
        ax.set_xlabel("seconds since the step")
        ax.set_ylabel("requests /s")
        twin = ax.twinx()
        twin.step(t, [r["replicas"] or 0 for r in rows], where="post", color="black", linestyle="--",
                  label="agent replicas")
        twin.set_ylabel("replicas")
        twin.set_ylim(0, max([r["replicas"] or 0 for r in rows] + [1]) + 1)
        lines, labels = ax.get_legend_handles_labels()
        lines2, labels2 = twin.get_legend_handles_labels()
        ax.legend(lines + lines2, labels + labels2, loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="soak folders (records.csv, rss.csv)")
    ap.add_argument("--bin-s", type=int, default=5)
    ap.add_argument("--out", type=Path, help="JSON: per second, per folder")
    ap.add_argument("--png", type=Path)
    args = ap.parse_args(argv)
    series = {d.name: timeline(d) for d in args.dirs}
    for name, rows in series.items():
        print(markdown(name, binned(rows, args.bin_s), args.bin_s), end="\n\n")
    if args.out:
        args.out.write_text(json.dumps(series, indent=1))
    if args.png:
        plot(series, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""report.md and PNG plots from summary.json files (one result set, or several side by side).

matplotlib with the Agg backend only (no display); numpy/matplotlib/stdlib, so it also runs on the GPU machine.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.stats import write_json

LATENCY_PLOTS = (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("e2e_ms", "E2E"))


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(step: dict, metric: str, p: str):
    dist = step.get(metric)
    return dist.get(p) if dist else None


def online_table(summaries: list[dict]) -> list[str]:
    head = ("| run | users | req/s | output tok/s | goodput req/s (SLO %) | TTFT p50 / p95 / p99 ms | "
            "TPOT p50 / p95 / p99 ms | E2E p50 / p95 / p99 ms | failures |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summaries:
        for st in s["steps"]:
            if st.get("status") == "FAILED":  # a step that recorded no successful request: say so, with why
                why = "; ".join(f"{k} x{v}" for k, v in (st.get("errors") or {}).items()) or "no request recorded"
                lines.append(f"| {s['name']} | {st['users']} | **FAILED** | {why[:200]} (Locust log tail in "
                             f"summary.json) | | | | | {st['failures']}/{st['requests']} |")
                continue
            tri = {m: " / ".join(_fmt(_pct(st, m, p)) for p in ("p50", "p95", "p99")) for m, _ in LATENCY_PLOTS}
            lines.append(f"| {s['name']} | {st['users']} | {_fmt(st['req_s'], 2)} | {_fmt(st['output_tok_s'])} | "
                         f"{_fmt(st['goodput_req_s'], 2)} ({_fmt(100 * st['slo_attainment'], 0)}%) | "
                         f"{tri['ttft_ms']} | {tri['tpot_ms']} | {tri['e2e_ms']} | "
                         f"{st['failures']}/{st['requests']} |")
    return lines


def offline_table(summaries: list[dict]) -> list[str]:
    lines = ["| run | pass | elapsed s | req/s | output tok/s | total tok/s |", "|---|---|---|---|---|---|"]
    for s in summaries:
        for label in ("best", "median"):
            p = s.get(label) or {}
            if p:
                lines.append(f"| {s['name']} | {label} | {_fmt(p['elapsed_s'], 3)} | {_fmt(p['req_s'], 2)} | "
                             f"{_fmt(p['output_tok_s'])} | {_fmt(p['total_tok_s'])} |")
        for p in s["steps"]:
            lines.append(f"| {s['name']} | {p['pass']} | {_fmt(p['elapsed_s'], 3)} | {_fmt(p['req_s'], 2)} | "
                         f"{_fmt(p['output_tok_s'])} | {_fmt(p['total_tok_s'])} |")
    return lines


def plot_latency(summaries: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (metric, label) in zip(axes, LATENCY_PLOTS):
        for s in summaries:
            users = [st["users"] for st in s["steps"]]
            for p, style in (("p50", "-o"), ("p99", "--^")):
                ax.plot(users, [_pct(st, metric, p) for st in s["steps"]], style, label=f"{s['name']} {p}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent users")
        ax.set_ylabel(f"{label} (ms)")
        ax.set_title(f"{label} p50 / p99 vs concurrency")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_throughput(summaries: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for s in summaries:
        users = [st["users"] for st in s["steps"]]
        axes[0].plot(users, [st["req_s"] for st in s["steps"]], "-o", label=f"{s['name']} req/s")
        axes[0].plot(users, [st["goodput_req_s"] for st in s["steps"]], ":x", label=f"{s['name']} goodput")
        axes[1].plot(users, [st["output_tok_s"] for st in s["steps"]], "-o", label=s["name"])
    for ax, ylabel in zip(axes, ("requests / s", "output tokens / s")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent users")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title("throughput and goodput vs concurrency")
    axes[1].set_title("output tokens/s vs concurrency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_offline(summaries: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    names = [s["name"] for s in summaries]
    best = [s["best"]["output_tok_s"] for s in summaries]
    median = [s["median"]["output_tok_s"] for s in summaries]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], best, 0.4, label="best pass")
    ax.bar([x + 0.2 for x in xs], median, 0.4, label="median pass")
    ax.set_xticks(list(xs), names, rotation=20)
    ax.set_ylabel("output tokens / s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _config_lines(s: dict) -> list[str]:
    lines = [f"- target: `{s.get('target')}`", f"- config: `{s.get('config')}`"]
    if s.get("slo"):
        lines.append(f"- goodput SLO: TTFT ≤ {s['slo']['ttft_ms']} ms and TPOT ≤ {s['slo']['tpot_ms']} ms"
                     + (f" and E2E ≤ {s['slo']['e2e_ms']} ms" if s["slo"].get("e2e_ms") else ""))
    if s.get("command"):
        lines.append(f"- command: `{s['command']}`")
    return lines


def write_report(summary: dict, out_dir: Path, title: str | None = None) -> Path:
    """summary.json + report.md + plots for one result set; returns report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "summary.json", summary)
    return _write_markdown([summary], out_dir, title or f"Benchmark: {summary['name']}",
                           intro=_config_lines(summary))


def write_comparison(summaries: list[dict], out_dir: Path, title: str = "Benchmark comparison",
                     intro: list[str] | None = None) -> Path:
    """One table and one set of plots with every result set side by side; returns report.md."""
    if len(summaries) < 1:
        raise ValueError("nothing to compare")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "comparison.json", {"runs": [s["name"] for s in summaries], "summaries": summaries})
    lines = list(intro or [])
    for s in summaries:
        lines += [f"### {s['name']}", *_config_lines(s), ""]
    return _write_markdown(summaries, out_dir, title, intro=lines)


def _write_markdown(summaries: list[dict], out_dir: Path, title: str, intro: list[str]) -> Path:
    online = [s for s in summaries if s.get("kind", "online") == "online" and s["steps"]]
    offline = [s for s in summaries if s.get("kind") == "offline" and s["steps"]]
    lines = [f"# {title}", "", *intro, ""]
    if online:
        plot_latency(online, out_dir / "latency.png")
        plot_throughput(online, out_dir / "throughput.png")
        legend = ("TTFT: time to the first output chunk; TPOT: (E2E − TTFT) / (output tokens − 1); "
                  "req/s and tok/s count requests completed inside the measurement window.")
        lines += ["## Online (Locust, streamed requests, closed loop)", "", *online_table(online), "", legend, "",
                  "![latency](latency.png)", "", "![throughput](throughput.png)", ""]
    if offline:
        plot_offline(offline, out_dir / "offline.png")
        lines += ["## Offline", "", *offline_table(offline), "", "![offline](offline.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path

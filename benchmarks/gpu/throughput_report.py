"""Tables and a plot for the throughput section of benchmarks/results/h200/report.md, from the JSON the device
phases of benchmarks/gpu/throughput.sh wrote into benchmarks/results/h200/throughput/.

    python -m benchmarks.gpu.throughput_report [--dir benchmarks/results/h200/throughput]

Writes ``tables.md`` (every table, each row traceable to a JSON file beside it) and ``throughput.png`` into the
folder. numpy/matplotlib/stdlib only.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

ROOFLINE_TOK_S = 71_780  # benchmarks/results/h200/roofline.json (max_num_seqs 1024)


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _f(v, digits: int = 0) -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def engine_rows(d: Path) -> tuple[list[str], dict]:
    lines = ["| run | engine args | pass 1 (warm-up) | passes 2-4 | best | median | median vs base | best / roofline |",
             "|---|---|---|---|---|---|---|---|"]
    base = None
    out = {}
    for name in ("base", "fp8kv", "mnbt65536", "fp8w"):
        s = _load(d / "engine" / name / "summary.json")
        if not s:
            log = d / "engine" / f"{name}.log"
            if not log.is_file():
                lines.append(f"| {name} | not run (the lease's device time ran out) | | | | | | |")
                continue
            err = ""
            if log.is_file():
                errs = [ln for ln in log.read_text(errors="replace").splitlines() if "Error" in ln]
                err = errs[-1][:160] if errs else "no summary"
            lines.append(f"| {name} | | FAILED: {err} | | | | | |")
            continue
        passes = [p["output_tok_s"] for p in s["steps"]]
        med, best = s["median"]["output_tok_s"], s["best"]["output_tok_s"]
        out[name] = {"best": best, "median": med}
        if name == "base":
            base = med
        args = ", ".join(f"{k}={v}" for k, v in s["config"]["engine_kwargs"].items() if k != "compilation_config")
        lines.append(f"| {name} | CUDA graphs to 1024{', ' + args if args else ''} | {_f(passes[0])} | "
                     f"{' / '.join(_f(p) for p in passes[1:])} | **{_f(best)}** | **{_f(med)}** | "
                     f"{_f(100 * (med / base - 1), 1) + '%' if base else '–'} | {_f(100 * best / ROOFLINE_TOK_S)}% |")
    return lines, out


def sweep_rows(d: Path, offline_median: float | None) -> tuple[list[str], dict]:
    lines = ["| API servers | start s | output tok/s, passes 1-3 | best | median | median / offline median | "
             "req/s (median pass) | TTFT p50 / p99 ms (median pass) | failed |",
             "|---|---|---|---|---|---|---|---|---|"]
    out = {}
    for server in sorted(d.glob("n*-server.json"), key=lambda p: int(re.match(r"n(\d+)", p.name).group(1))):
        n = int(re.match(r"n(\d+)", server.name).group(1))
        meta = _load(server) or {}
        if meta.get("status") != "ok":
            lines.append(f"| {n} | FAILED: {meta.get('error', '')[:150]} | | | | | | | |")
            continue
        passes = [_load(p) for p in sorted(d.glob(f"n{n}-sat-p*.json"))]
        passes = [p for p in passes if p and p.get("status") == "ok"]
        if not passes:
            lines.append(f"| {n} | {meta.get('start_s')} | FAILED (no pass recorded) | | | | | | |")
            continue
        toks = [p["output_tok_s"] for p in passes]
        med = statistics.median(toks)
        mid = sorted(passes, key=lambda p: p["output_tok_s"])[(len(passes) - 1) // 2]
        out[n] = {"passes": toks, "median": med, "best": max(toks)}
        ratio = f"{100 * med / offline_median:.0f}%" if offline_median else "–"
        lines.append(f"| {n} | {meta.get('start_s')} | {' / '.join(_f(t) for t in toks)} | {_f(max(toks))} | "
                     f"**{_f(med)}** | **{ratio}** | {_f(mid['req_s'], 1)} | {_f(mid['ttft_ms']['p50'])} / "
                     f"{_f(mid['ttft_ms']['p99'])} | {sum(p['failed'] for p in passes)} |")
    return lines, out


def agreement_rows(paths: list[Path]) -> list[str]:
    lines = ["| target | concurrency | req/s Locust / vLLM client (Δ) | TTFT p50 ms Locust / vLLM client (Δ) | "
             "within 10% |", "|---|---|---|---|---|"]
    for p in paths:
        a = _load(p)
        if not a:
            continue
        m = a["metrics"]

        def cell(k, m=m):
            r = m[k]
            diff = _f(100 * r["diff"], 1) + "%" if r["diff"] is not None else "–"
            return f"{_f(r['locust'], 1)} / {_f(r['vllm'], 1)} ({diff})"

        target = "pipeline" if "pipeline" in str(p) else "domain vLLM"
        lines.append(f"| {target} ({p.parent.name}) | {a['users']} | {cell('req_s')} | {cell('ttft_p50_ms')} | "
                     f"{'yes' if a['agree'] else '**no**'} |")
    return lines


def pipeline_rows(d: Path) -> tuple[list[str], dict]:
    lines = ["| variant | users | runs/s | tokens/run p50 | E2E p50 / p99 ms | answer TTFT p50 / p99 ms | failures | "
             "prefix-cache hit rate agent / domain |", "|---|---|---|---|---|---|---|---|"]
    curves = {}
    for v in ("shared-base", "base", "wide8", "wide8-tput", "wide8-prio"):
        s = _load(d / v / "summary.json")
        if not s:
            continue
        curves[v] = []
        for st in s["steps"]:
            pc = st.get("prefix_cache") or {}
            rate = " / ".join(f"{100 * pc[r]['rate']:.0f}%" if pc.get(r, {}).get("rate") is not None else "–"
                              for r in ("agent", "domain"))
            if st.get("status") == "FAILED":
                errs = "; ".join(f"{k} x{n}" for k, n in (st.get("errors") or {}).items())[:160]
                lines.append(f"| {v} | {st['users']} | **FAILED** | | | | {st['failures']}/{st['requests']}: {errs} "
                             f"| {rate} |")
                continue
            e2e, ttft, tok = st.get("e2e_ms") or {}, st.get("ttft_ms") or {}, st.get("output_tokens") or {}
            errs = "; ".join(f"{k[:60]} x{n}" for k, n in (st.get("errors") or {}).items())
            curves[v].append((st["users"], st["req_s"]))
            lines.append(f"| {v} | {st['users']} | **{st['req_s']:.2f}** | {_f(tok.get('p50'))} | "
                         f"{_f(e2e.get('p50'))} / {_f(e2e.get('p99'))} | "
                         f"{_f(ttft.get('p50'))} / {_f(ttft.get('p99'))} | "
                         f"{st['failures']}/{st['requests']}{' (' + errs + ')' if errs else ''} | {rate} |")
    return lines, curves


def profile_rows(d: Path) -> list[str]:
    lines = []
    for cpu_file in sorted(d.glob("*/cpu-u*.json")):
        cpu = _load(cpu_file)
        if not cpu:
            continue
        lines += [f"CPU per process during `{cpu_file.parent.name}` at {cpu_file.stem.split('-u')[-1]} users "
                  f"({cpu['seconds']} s, psutil; 100% = one core):", "", "| CPU % | process |", "|---|---|"]
        for r in cpu["rows"][:14]:
            lines.append(f"| {r['cpu_pct']:.0f} | `{r['cmd'][:100]}` |")
        lines.append("")
    generic = ("run threading.py", "_bootstrap threading.py", "_bootstrap_inner threading.py", "<module> ")
    for sample_file in sorted(d.glob("*/samples-u*.json")):
        samples = _load(sample_file) or []
        lines += [f"Sampled Ray workers during `{sample_file.parent.name}` at {sample_file.stem.split('-u')[-1]} "
                  "users (CPU from /proc per thread; stacks = Python frames of the samples whose innermost frame "
                  "is not a wait):", ""]
        for proc in sorted(samples, key=lambda p: -p.get("process_cpu_pct", 0))[:6]:
            title = proc["title"].split(" ")[0][:60]
            lines.append(f"- `{title}` (pid {proc['pid']}): process {proc.get('process_cpu_pct')}% CPU, busiest "
                         f"native threads {proc.get('native_threads_cpu_pct', [])[:4]}%")
            for t in [t for t in proc["threads"] if t.get("cpu_pct", 0) >= 5][:3]:
                incl = [(k, n) for k, n in t["inclusive"] if not k.startswith(generic)][:12]
                lines.append(f"  - thread `{t['name']}` {t['cpu_pct']}% CPU, {t['busy']}/{t['samples']} samples "
                             "not waiting; on the stack: " + ", ".join(
                                 f"`{k}` {100 * n / max(t['busy'], 1):.0f}%" for k, n in incl))
        lines.append("")
    return lines


def plot(sweep: dict, offline: dict, curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    ax = axes[0]
    ns = sorted(sweep)
    ax.bar([str(n) for n in ns], [sweep[n]["median"] for n in ns], color="tab:blue", label="online median")
    for i, n in enumerate(ns):
        ax.plot([i] * len(sweep[n]["passes"]), sweep[n]["passes"], "k.", ms=5)
    if "base" in offline:
        ax.axhline(offline["base"]["median"], color="tab:red", ls="--", label="offline engine median")
        ax.axhline(0.9 * offline["base"]["median"], color="tab:red", ls=":", label="90% of offline")
    ax.set_xlabel("vllm serve --api-server-count")
    ax.set_ylabel("output tokens / s")
    ax.set_title("domain tier, 1000 x 256/256, 1,024 concurrent")
    ax.legend(fontsize=8)
    ax = axes[1]
    for name, pts in curves.items():
        if pts:
            ax.plot([u for u, _ in pts], [r for _, r in pts], "-o", label=name)
    ax.axhline(60, color="tab:red", ls=":", label="goal 60 runs/s")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent users (Locust)")
    ax.set_ylabel("agent runs / s")
    ax.set_title("pipeline, 640 generated tokens per run (fixed)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="benchmarks/results/h200/throughput")
    args = ap.parse_args(argv)
    d = Path(args.dir)
    eng, offline = engine_rows(d)
    sweep_lines, sweep = sweep_rows(d / "domain", (offline.get("base") or {}).get("median"))
    agree = agreement_rows(sorted(d.glob("domain/*agreement*.json")) + sorted(d.glob("pipeline/*/agreement*.json")))
    pipe, curves = pipeline_rows(d / "pipeline")
    prof = profile_rows(d / "pipeline")
    md = ["## Engine (offline)", "", *eng, "", "## Domain tier API-server sweep", "", *sweep_lines, "",
          "## Client agreement", "", *agree, "", "## Pipeline", "", *pipe, "", "## Ray tier profile", "", *prof]
    (d / "tables.md").write_text("\n".join(md) + "\n")
    plot(sweep, offline, curves, d / "throughput.png")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

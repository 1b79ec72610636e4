"""Tables and figures of benchmarks/loadgen.py: the clients' agreement (compare.md, compare.png) and the
agent trace's replay (trace.md, trace.png). Markdown and matplotlib only; every file names the command that
made it."""

from __future__ import annotations

from pathlib import Path

LABELS = {"req_s": "req/s", "output_tok_s": "output tok/s", "ttft_p50_ms": "TTFT p50 (ms)",
          "e2e_p50_ms": "E2E p50 (ms)"}


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) and abs(value) < 100 else f"{value:.0f}" \
        if isinstance(value, float) else str(value)


def compare_table(target: dict) -> list[str]:
    from benchmarks.loadgen import CLIENTS, METRICS

    lines = ["| client | rounds | " + " | ".join(f"{LABELS[m]} median (best)" for m in METRICS)
             + " | ratio to Locust (req/s, tok/s, TTFT, E2E) | within 10% |",
             "|---|---|" + "---|" * len(METRICS) + "---|---|"]
    for client in CLIENTS:
        agg = target["clients"].get(client, {})
        cells = [f"{_fmt(agg[m]['median'])} ({_fmt(agg[m]['best'])})" if m in agg else "-" for m in METRICS]
        ratios = ", ".join(_fmt(agg.get("ratio_to_locust", {}).get(m)) for m in METRICS)
        agree = agg.get("agree", {})
        off = ", ".join(LABELS[m] for m, ok in agree.items() if not ok)
        verdict = "-" if client == "locust" else ("yes" if agree and not off else f"no: {off}")
        lines.append(f"| {client} | {agg.get('rounds', 0)} | " + " | ".join(cells)
                     + f" | {ratios} | {verdict} |")
    return lines


def rounds_table(target: dict) -> list[str]:
    lines = ["| round | client | status | requests | failed | req/s | out tok/s | tokens/request | "
             "TTFT p50 | E2E p50 | wall s | client CPU ms/request |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in target["rounds"]:
        lines.append(f"| {r['round']} | {r['client']} | {r['status']} | {r['requests']} | {r['failures']} | "
                     f"{_fmt(r['req_s'])} | {_fmt(r['output_tok_s'])} | "
                     f"{_fmt(r.get('output_tokens_per_request'))} | {_fmt(r['ttft_p50_ms'])} | "
                     f"{_fmt(r['e2e_p50_ms'])} | {r['wall_s']} | "
                     f"{_fmt(r.get('client_cpu_ms_per_request'))} |")
    return lines


def write_compare(results: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    md = ["# Load generators on the same load: Locust runner vs `vllm bench serve` vs AIPerf", "",
          f"Command: `{results['command']}` (stack profile `{results.get('profile')}`, "
          f"{results['created']}).", "",
          "Medians of the rounds (best in brackets); ratios are each client's median over the Locust "
          f"runner's median; 'within 10%' is |ratio - 1| <= {results['tolerance']:.0%}. "
          "Figure: compare.png.", ""]
    for target in results["targets"]:
        md += [f"## {target['target']} ({target['url']}, model `{target['model']}`)", "",
               f"{target['users']} concurrent users (closed loop), {target['duration_s']:g} s per run, "
               f"max_tokens {target['max_tokens']}, ignore_eos {'on' if target['ignore_eos'] else 'off'}, "
               f"`vllm bench serve --num-prompts {target['vllm_bench_num_prompts']}`.", "",
               *compare_table(target), "", "Every round:", "", *rounds_table(target), ""]
    (out / "compare.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    _compare_png(results, out / "compare.png")
    return out / "compare.md"


def _compare_png(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.loadgen import CLIENTS, METRICS

    targets = results["targets"]
    fig, axes = plt.subplots(1, max(1, len(targets)), figsize=(6 * max(1, len(targets)), 4), squeeze=False)
    width = 0.8 / len(CLIENTS)
    for ax, target in zip(axes[0], targets):
        for i, client in enumerate(CLIENTS):
            ratios = target["clients"].get(client, {}).get("ratio_to_locust", {})
            ax.bar([j + i * width for j in range(len(METRICS))], [ratios.get(m, 0) for m in METRICS], width,
                   label=client)
        tol = results["tolerance"]
        ax.axhspan(1 - tol, 1 + tol, color="green", alpha=0.12, label="±10%")
        ax.set_xticks([j + width for j in range(len(METRICS))], [LABELS[m] for m in METRICS], fontsize=8)
        ax.set_ylabel("median / Locust runner's median")
        ax.set_title(f"{target['target']}: {target['users']} users, {target['duration_s']:g} s x "
                     f"{len({r['round'] for r in target['rounds']})} rounds", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(results["command"][:140], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_trace_report(result: dict, out: Path) -> Path:
    trace, replay, cap = result["trace"], result["replay"], result["capture"]
    models = trace.get("models", {})
    md = ["# The pipeline's agent workload as an AIPerf trace, replayed on the vLLM tiers", "",
          f"Command: `{result['command']}` (stack profile `{result.get('profile')}`, "
          f"{result['created']}).", "",
          f"Capture: the Locust runner on the pipeline, {cap['users']} users for {cap['duration_s']:g} s: "
          f"{cap['locust']['requests']} runs, {_fmt(cap['locust']['req_s'])} runs/s, E2E p50 "
          f"{_fmt(cap['locust']['e2e_p50_ms'])} ms. Exported from the replica's log: "
          f"{trace['runs']} complete runs, {trace['trace_calls']} vLLM calls (trace/trace.jsonl, AIPerf "
          f"`mooncake_trace`; trace/runs.json per run). Block size {trace['block_size']}, shared "
          f"system-prompt tokens {trace['shared_prefix_tokens']}.", "",
          "Per run (means):", "", "| tier | calls | prompt tokens | output tokens | call latency ms |",
          "|---|---|---|---|---|"]
    for tier, row in (trace.get("per_run") or {}).items():
        md.append(f"| {tier} | {row['calls']} | {row['prompt_tokens']} | {row['output_tokens']} | "
                  f"{row['mean_call_ms']} |")
    md += ["", "Tools (their own latency, the agent's call subtracted):", "",
           "| tool | calls | mean ms | max ms |", "|---|---|---|---|"]
    for tool, row in (trace.get("tools") or {}).items():
        md.append(f"| {tool} | {row['calls']} | {row['mean_ms']} | {row['max_ms']} |")
    md += ["", "Replay (AIPerf, fixed schedule, per-call latency; recorded = the same calls seen from the "
           "replica):",
           "", "| tier | model | recorded p50 / p90 ms | replayed p50 / p90 ms | calls recorded / replayed |",
           "|---|---|---|---|---|"]
    replayed_all = {}
    for name, part in replay.items():
        if isinstance(part, dict) and "replayed_latency_ms" in part:
            replayed_all.update(part["replayed_latency_ms"])
    for tier, rec in (replay.get("recorded_latency_ms") or {}).items():
        rep = replayed_all.get(models.get(tier, tier), {})
        md.append(f"| {tier} | {models.get(tier, '-')} | {rec.get('p50')} / {rec.get('p90')} | "
                  f"{rep.get('p50', '-')} / {rep.get('p90', '-')} | {rec.get('n')} / {rep.get('n', 0)} |")
    for name, part in replay.items():
        if isinstance(part, dict) and "step" in part:
            extra = part["replayed_latency_ms"].get("server_prompt_tokens_over_trace") or {}
            if extra:
                md += ["", f"Prompt tokens as the server counted them, over the trace's `input_length`: "
                           f"p50 {extra['p50']}, max {extra['max']} (the chat template's tokens)."]
            s = part["step"]
            md += ["", f"AIPerf replay `{name}`: {s['requests']} requests, {s['failures']} failed, "
                       f"{_fmt(s['req_s'])} req/s over {s['duration_s']} s "
                       f"(trace span {replay['trace_span_s']} s)."
                       f" Command: `{part['command']}`"]
    md += ["", "Figure: trace.png (recorded vs replayed per-call latency by tier)."]
    (out / "trace.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    _trace_png(result, out / "trace.png")
    return out / "trace.md"


def _trace_png(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    replay, models = result["replay"], result["trace"].get("models", {})
    replayed = {}
    for part in replay.values():
        if isinstance(part, dict) and "replayed_latency_ms" in part:
            replayed.update(part["replayed_latency_ms"])
    tiers = sorted(replay.get("recorded_latency_ms") or {})
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, tier in enumerate(tiers):
        rec, rep = replay["recorded_latency_ms"][tier], replayed.get(models.get(tier, tier), {})
        for j, (label, data) in enumerate((("recorded (replica)", rec), ("replayed (AIPerf)", rep))):
            ax.bar(i + j * 0.2 - 0.2, data.get("p50", 0), 0.18, label=f"{label} p50" if i == 0 else None,
                   color=f"C{2 * j}")
            ax.bar(i + j * 0.2 + 0.2, data.get("p90", 0), 0.18, label=f"{label} p90" if i == 0 else None,
                   color=f"C{2 * j + 1}")
    ax.set_xticks(range(len(tiers)), tiers)
    ax.set_ylabel("per-call latency (ms)")
    ax.set_title("agent workload: recorded vs AIPerf replay", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(result["command"][:140], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

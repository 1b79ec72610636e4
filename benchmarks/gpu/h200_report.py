"""Build benchmarks/results/h200/report.md (+ tuning.png) from the raw JSON that benchmarks/gpu/h200.sh wrote.

    python -m benchmarks.gpu.h200_report

Engine figures: pass 1 of each run is the warm-up (listed, not ranked); best and median are over passes 2-4.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

R = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "h200"
# run order in the lease (interleaved), the change, and the prediction written in NOTES.md before the run
RUNS = [
    ("stock", "vLLM 0.26 defaults", "37-41k (as measured before)"),
    ("cudagraph1024", "`compilation_config={max_cudagraph_capture_size: 1024}`", "+10-20%"),
    ("cudagraph1024+async", "CUDA graphs to 1024 + `async_scheduling=True`", "+5-10% over CUDA graphs alone"),
    ("stock-2", "vLLM 0.26 defaults (re-measured)", "= stock"),
    ("cudagraph1024-2", "CUDA graphs to 1024 (re-measured)", "= cudagraph1024"),
]


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def steady(summary: dict) -> tuple[float, float, float]:
    tok_s = [s["output_tok_s"] for s in summary["steps"]]
    return tok_s[0], max(tok_s[1:]), statistics.median(tok_s[1:])


def main() -> None:
    roof = load(R / "roofline.json")
    bound = next(b for b in roof["bounds"] if b["max_num_seqs"] == 1024)
    rows, plot = [], []
    for name, change, prediction in RUNS:
        path = R / "engine" / name / "summary.json"
        if not path.is_file():
            continue
        first, best, median = steady(load(path))
        rows.append(f"| {name} | {change} | {prediction} | {first:,.0f} | **{best:,.0f}** | {median:,.0f} | "
                    f"{best / bound['output_tok_s']:.0%} |")
        plot.append((name, first, best, median))
    stock = [p for p in plot if p[0].startswith("stock")]
    tuned = [p for p in plot if p[0].startswith("cudagraph1024") and "async" not in p[0]]
    best_run = max(plot, key=lambda p: p[2])

    online = load(R / "online" / "domain" / "summary.json")
    online_steps = [s for s in online["steps"] if s["completed_in_window"]]
    peak = max(online_steps, key=lambda s: s["output_tok_s"])
    hf = load(R / "hf-generate" / "summary.json")
    hf_tok_s = hf["median"]["output_tok_s"]
    pipe = load(R / "online" / "pipeline" / "summary.json")
    lora = load(R / "lora_train_internlm2_1_8b.json")

    def prefix(port: int) -> tuple[float, float]:
        vals = {}
        for line in (R / "online" / f"prefix-cache-{port}.txt").read_text().splitlines():
            key = "hits" if "hits" in line else "queries"
            vals[key] = float(line.rsplit(" ", 1)[1])
        return vals.get("hits", 0), vals.get("queries", 0)

    agent_hits, agent_queries = prefix(8001)
    domain_hits, domain_queries = prefix(8000)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    xs = range(len(plot))
    ax.bar([x - 0.27 for x in xs], [p[1] / 1e3 for p in plot], 0.27, label="pass 1 (warm-up)", color="#bbb")
    ax.bar(list(xs), [p[2] / 1e3 for p in plot], 0.27, label="best of passes 2-4", color="#2a6")
    ax.bar([x + 0.27 for x in xs], [p[3] / 1e3 for p in plot], 0.27, label="median of passes 2-4", color="#6a9")
    ax.axhline(bound["output_tok_s"] / 1e3, color="r", ls="--", label=f"roofline {bound['output_tok_s'] / 1e3:.1f}k")
    ax.axhline(0.75 * bound["output_tok_s"] / 1e3, color="r", ls=":", label="75% of roofline")
    ax.set_xticks(list(xs), [p[0] for p in plot], rotation=15)
    ax.set_ylabel("output tok/s (thousands)")
    ax.set_title("InternLM2-chat-1.8B shape, 1000 x 256/256, vLLM 0.26 offline, one H200 (run order left to right)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(R / "tuning.png", dpi=110)

    md = [
        "# H200 campaign: domain tier (vLLM) tuning, the seed's baseline, the pipeline",
        "",
        "One lent NVIDIA H200 (143,771 MiB, driver 580.159.04), vLLM 0.26.0 + Ray 2.60 + Locust 2.47 from the shared "
        "GPU kit, random weights at the real shapes built on the GPU (`benchmarks/gpu/h200.sh setup`). Every figure "
        "below comes from one lease (2026-11-29, ~27 device-minutes); raw JSON and logs are beside this file, "
        "predictions and the run log are in [NOTES.md](NOTES.md). Reproduce: the device calls listed at the end.",
        "",
        "**Finding that changed the plan:** vLLM 0.26's native `InternLM2ForCausalLM` fails on the GPU at engine "
        "start-up (`forward() missing 1 required positional argument: 'intermediate_tensors'`, "
        "`engine/stock.log` of the first attempt). All GPU figures therefore serve the *Llama-layout conversion* of "
        "the same checkpoint (`suiqa finetune convert --to llama`; bit-identical weights, tested in "
        "tests/unit/finetune/test_convert.py), and the `gpu-internlm2-1_8b` profile now expects that layout.",
        "",
        "## Roofline (benchmarks/roofline.py, bandwidth and matmul rate measured in the same lease)",
        "",
        f"Measured: device-to-device copy {roof['bandwidth_tbs']:.2f} TB/s (read + write), bf16 8192^3 matmul "
        f"{roof['matmul_tflops']:.0f} TFLOP/s. Per decode step: weights {roof['weight_bytes_per_step'] / 1e9:.2f} GB "
        f"({roof['matmul_params'] / 1e9:.2f} B matmul parameters x 2 bytes) + KV {roof['kv_bytes_per_token'] // 1024} "
        "KiB per cached token (24 layers x 8 KV heads x 128 x 2 x 2 bytes). With 1000 sequences at mid-decode "
        f"(L = 384) a step must move ~41 GB: {roof['decode_step_ms_at_1000_seqs_mid_context']:.1f} ms, "
        f"{roof['bound_at_1000']}-bound (its matmuls need ~4.3 ms). Prefill of 256k tokens is compute-bound: "
        f"{bound['prefill_s']:.2f} s.",
        "",
        "| max_num_seqs | waves | prefill s | decode s | bound s | roofline output tok/s |",
        "|---|---|---|---|---|---|",
        *[f"| {b['max_num_seqs']} | {b['waves']} | {b['prefill_s']:.2f} | {b['decode_s']:.2f} | {b['total_s']:.2f} | "
          f"{b['output_tok_s']:,.0f} |" for b in roof["bounds"]],
        "",
        f"vLLM's offline default on this GPU is max_num_seqs 1024, so the roofline is **{bound['output_tok_s']:,.0f} "
        "output tok/s** (1000 x 256 tokens in 3.57 s).",
        "",
        "## Engine tuning (offline `vllm.LLM`, 1000 requests x 256 random prompt tokens / 256 output, ignore_eos)",
        "",
        "Each run is one process, 4 passes over the full batch; pass 1 is the warm-up; best and median over passes "
        "2-4. Runs are listed in the order they ran (baseline re-measured in between).",
        "",
        "| run | change | prediction | pass 1 | best | median | best / roofline |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "| cudagraph1024+fp8-weights | + `quantization=fp8` | +0-5% "
        "| not run: the kit lacks `compressed_tensors` | | | |",
        "",
        "![tuning](tuning.png)",
        "",
        f"- **CUDA-graph capture up to 1024 wins far beyond the noise**: best {min(p[2] for p in tuned):,.0f}-"
        f"{max(p[2] for p in tuned):,.0f} vs stock {min(p[2] for p in stock):,.0f}-{max(p[2] for p in stock):,.0f} "
        f"(medians {min(p[3] for p in tuned):,.0f}-{max(p[3] for p in tuned):,.0f} vs "
        f"{min(p[3] for p in stock):,.0f}-{max(p[3] for p in stock):,.0f}). By default vLLM 0.26 captures graphs "
        "only up to batch 512, so with ~1000 running sequences every decode step runs eagerly (hundreds of kernel "
        "launches from Python per step). The stock figures here are also below the 37-41k measured on another "
        "H200 before; the spread between machines is large, which is why only same-lease ratios count.",
        "- **Async scheduling did not add to it** (33.9k best, inside the tuned runs' spread): dropped.",
        "- **fp8 weights** were not measurable (the kit does not ship `compressed-tensors`); the roofline predicts "
        "at most ~4% (weights are 3.4 of ~41 GB per step).",
        f"- **Best profile: {best_run[2]:,.0f} output tok/s = {best_run[2] / bound['output_tok_s']:.0%} of the "
        "roofline** (goal 75%: not reached). The gap: the roofline assumes attention reads the KV cache at full copy "
        "bandwidth and that the CPU side (scheduler, sampler, detokenizer for 1000 sequences) is free; pass-to-pass "
        "spread of ±10% inside one process points at the CPU side. Next candidates: fp8 KV cache "
        "(halves the dominant KV bytes; an earlier lease saw no gain with the default graphs, untested with "
        "graphs up to 1024), and a larger `max_num_batched_tokens` for the prefill phase.",
        "- Adopted in `serving/profiles/gpu-internlm2-1_8b.yaml`: `--compilation-config "
        "'{\"max_cudagraph_capture_size\": 1024}'`.",
        "",
        "## Online server vs offline engine; vLLM vs the seed's one-at-a-time baseline",
        "",
        "Online: the `gpu-bench` stack's domain server (`suiqa up --profile gpu-bench`, vLLM OpenAI server, "
        "gpu_memory_utilization 0.45, stock graph settings), Locust user (6 processes), `/v1/completions` streamed, "
        "256-token prompts, 256 output tokens, ignore_eos, 15 s per step.",
        "",
        "| users | req/s | output tok/s | TTFT p50 / p99 ms | TPOT p50 / p99 ms | E2E p50 / p99 ms |",
        "|---|---|---|---|---|---|",
        *[f"| {s['users']} | {s['req_s']:.1f} | {s['output_tok_s']:,.0f} | {s['ttft_ms']['p50']:.0f} / "
          f"{s['ttft_ms']['p99']:.0f} | {s['tpot_ms']['p50']:.1f} / {s['tpot_ms']['p99']:.1f} | "
          f"{s['e2e_ms']['p50']:.0f} / {s['e2e_ms']['p99']:.0f} |" for s in online_steps],
        "",
        "At 512 users the Locust step recorded no request at all (0 requests, 0 failures; its log did not come back), "
        "so that step has no figures; the 256-user step is the highest measured.",
        "",
        f"- **Online vs offline: {peak['output_tok_s']:,.0f} tok/s at {peak['users']} users vs the offline stock "
        f"engine's median {statistics.median([p[3] for p in stock]):,.0f} = "
        f"{peak['output_tok_s'] / statistics.median([p[3] for p in stock]):.0%}** (goal 90%: not reached). The "
        "comparison is not like for like: the server ran with at most 256 concurrent requests (offline: 1000) and "
        "the Locust client parses ~18k SSE chunks/s; TTFT p99 rising to 3.4 s at 256 users shows queueing in the "
        "API server process. Not separated in this lease.",
        f"- **vLLM vs the seed's serving**: HF `generate` one request at a time on the same GPU and model: "
        f"{hf_tok_s:.1f} output tok/s (median of 3 x 256 tokens, ~5.9 s per answer). vLLM online at "
        f"{peak['users']} users: **{peak['output_tok_s'] / hf_tok_s:,.0f}x**; vLLM offline best: "
        f"**{best_run[2] / hf_tok_s:,.0f}x**. At 1 user vLLM streams a 256-token answer in "
        f"{online_steps[0]['e2e_ms']['p50'] / 1000:.2f} s (TPOT {online_steps[0]['tpot_ms']['p50']:.1f} ms) vs "
        f"{256 / hf_tok_s:.1f} s.",
        "",
        "## The whole pipeline on the same GPU",
        "",
        "`suiqa up --profile gpu-bench`: domain vLLM (1.8B shape) + agent vLLM (Qwen2.5-1.5B shape, random) + "
        "knowledge base + Ray Serve (2-4 autoscaled replicas); the agent forces a first `search_knowledge` step, "
        "draft and agent turns capped at 128 tokens, <= 3 turns. Random weights never write a parsable ReAct "
        "action, so every run ends `degraded` (draft + evidence) after its parse retries: the figures measure the "
        "pipeline's mechanics (draft, search, agent turns, streaming), not answer quality.",
        "",
        "| users | agent runs/s | E2E p50 / p99 ms | TTFT of the answer p50 / p99 ms |",
        "|---|---|---|---|",
        *[f"| {s['users']} | {s['req_s']:.2f} | {s['e2e_ms']['p50']:.0f} / {s['e2e_ms']['p99']:.0f} | "
          f"{s['ttft_ms']['p50']:.0f} / {s['ttft_ms']['p99']:.0f} |"
          for s in pipe["steps"] if s["completed_in_window"]],
        "",
        "- Prefix-cache hit rate (vLLM `prefix_cache_hits` / `queries`): "
        f"agent tier **{agent_hits / agent_queries:.0%}** "
        f"({agent_hits:,.0f} / {agent_queries:,.0f} tokens): every ReAct turn resends the growing prompt; domain tier "
        f"{domain_hits / domain_queries:.0%} during the pipeline run.",
        "- Agent runs/s stayed at 3.2 from 8 to 32 users (E2E grew from 2.4 to 4.4 s), and the 64-user step "
        "recorded no request at all, like the 512-user domain step: either a serial bottleneck in the pipeline or "
        "the multi-process Locust client failing at higher user counts; this lease could not tell which "
        "(knowledge-base search of long garbage queries costs 1-4 ms on one core, measured afterwards on the CPU, "
        "so it is not that). Open; see the issue note.",
        "",
        "## Fine-tuning throughput (PEFT LoRA path, issue 6)",
        "",
        f"`{lora['command']}`: LoRA r={lora['lora_r']} on all linear layers of the random 1.8B-shape model (Llama "
        f"layout), bf16, batch {lora['batch_size']} x {lora['seq_len']} tokens: **{lora['tokens_per_s']:,.0f} "
        f"training tokens/s** ({lora['s_per_step'] * 1000:.0f} ms/step, peak {lora['peak_gpu_mem_gib']} GiB).",
        "",
        "## Commands (device calls, in order; see ../../gpu/h200.sh)",
        "",
        "```",
        "bash ../shared/gpu/build_payload.sh . server bench ray          # here, no device time",
        "call 1-2: mkdir -p /tmp/w && cp .gpu/N/* /tmp/w/                  # carry .gpu/1, .gpu/2",
        "call 3:   bash .gpu/3/unpack.sh && . /tmp/site/gpu-env.sh && bash benchmarks/gpu/h200.sh setup"
        "   # carry .gpu/3 .whl",
        "call 4:   python3 -c 'finetune.convert.internlm2_dir_to_llama(...)' && bash benchmarks/gpu/h200.sh engine-a",
        "call 5:   bash benchmarks/gpu/h200.sh engine-b",
        "call 6:   bash benchmarks/gpu/h200.sh online",
        "call 7:   suiqa up --profile gpu-bench (SUIQA_DOMAIN_MODEL=/tmp/models/domain-llama ...)"
        " && bash benchmarks/gpu/h200.sh pipeline",
        "call 8:   bash benchmarks/gpu/h200.sh engine-c",
        "call 9:   python3 -m benchmarks.engine_bench ... --name cudagraph1024-2"
        " --engine-arg 'compilation_config={...: 1024}'",
        "python -m benchmarks.gpu.h200_report                             # here: this report",
        "```",
        "",
    ]
    (R / "report.md").write_text("\n".join(md), encoding="utf-8")
    print(f"wrote {R / 'report.md'} and {R / 'tuning.png'}")


if __name__ == "__main__":
    main()

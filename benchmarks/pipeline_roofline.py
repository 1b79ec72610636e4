"""The pipeline's roofline: how many agent runs/s one GPU could give, from the tokens a run really costs.

    python -m benchmarks.pipeline_roofline --probe DIR/probe-u256.json --roofline roofline.json [--batch 256]

Issue 24 asks for the runs/s of the pipeline as a share of what the card could do. A run is a few calls to two
models on one GPU; per tier, benchmarks/timeline.py's probe measured the tokens of a run from vLLM's own counters
(prompt tokens, prefix-cache hits, generated tokens) and the calls per run. The GPU must at least

- prefill the uncached prompt tokens: ``2 x matmul params`` FLOPs each (compute-bound), and
- decode each generated token: its share of one engine step of ``batch`` sequences (benchmarks/roofline.py's
  ``decode_step_s``: the weights read once per step plus each sequence's KV cache at the measured bandwidth, or the
  matmul and attention FLOPs at the measured rate, whichever takes longer; ``--measure`` there, same card),

so a run needs at least ``sum over tiers`` of those seconds of GPU, and the card gives at most ``1 / that`` runs/s at
that batch. Two engines on one GPU do not overlap their work (without MPS their kernels time-slice), so the tiers'
seconds add. Shapes: InternLM2-chat-1.8B (domain) and Qwen2.5-1.5B (agent), the random-weight checkpoints' shapes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.roofline import DecoderShape, decode_step_s

SHAPES = {"domain": DecoderShape(), "agent": DecoderShape(hidden=1536, layers=28, heads=12, kv_heads=2,
                                                          intermediate=8960, vocab=151936)}


def tier_seconds(shape: DecoderShape, row: dict, batch: int, bw: float, flops: float) -> dict:
    """Lower bound of one run's GPU seconds on one tier (``row``: the probe's timeline row of the tier)."""
    calls = row.get("calls_per_run") or 0
    prompt, cached, generated = (row.get(k) or 0.0 for k in ("prompt_tokens_per_run", "cached_tokens_per_run",
                                                            "generated_tokens_per_run"))
    prefill_s = 2 * shape.matmul_params * max(0.0, prompt - cached) / flops
    context = (prompt / calls if calls else 0.0) + (generated / calls / 2 if calls else 0.0)  # mean while decoding
    step_s, bound_by = decode_step_s(shape, batch, context, bw, flops)  # one engine step of ``batch`` sequences
    decode_s = generated * step_s / batch
    return {"calls": calls, "prompt_tokens": prompt, "cached_tokens": cached, "generated_tokens": generated,
            "mean_context": round(context), "prefill_s": prefill_s, "decode_s": decode_s,
            "decode_bound_by": bound_by,
            "run_gpu_s": prefill_s + decode_s}


def roofline(probe: dict, bw: float, flops: float, batch: int) -> dict:
    tiers = {t: tier_seconds(SHAPES[t], probe["timeline"][t], batch, bw, flops)
             for t in SHAPES if t in probe["timeline"]}
    run_s = sum(t["run_gpu_s"] for t in tiers.values())
    measured = probe["runs"] / probe["seconds"] if probe.get("seconds") else None
    return {"batch": batch, "bandwidth_tb_s": round(bw / 1e12, 2), "matmul_tflop_s": round(flops / 1e12, 1),
            "tiers": tiers, "run_gpu_ms": round(run_s * 1000, 3), "max_runs_s": round(1 / run_s, 1) if run_s else None,
            "measured_runs_s": round(measured, 2) if measured else None,
            "share": round(measured * run_s, 4) if measured and run_s else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--probe", required=True, help="a probe-u<N>.json of benchmarks/timeline.py")
    ap.add_argument("--roofline", required=True, help="benchmarks/roofline.py --measure --json output")
    ap.add_argument("--batch", type=int, default=256, help="sequences decoded together per engine step")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    probe = json.loads(Path(args.probe).read_text())
    measured = json.loads(Path(args.roofline).read_text())
    bw, flops = measured["bandwidth_tbs"] * 1e12, measured["matmul_tflops"] * 1e12
    out = roofline(probe, bw, flops, args.batch)
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

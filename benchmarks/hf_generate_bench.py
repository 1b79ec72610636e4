"""The seed's baseline measured directly: HF transformers ``generate``, one request at a time, output tok/s.

    python -m benchmarks.hf_generate_bench --model DIR --num-prompts 10 --input-len 256 --output-len 256 \
        --out benchmarks/results/h200/hf-generate [--device cuda --dtype bfloat16]

Random token-id prompts (seeded), ``min_new_tokens = max_new_tokens = output-len`` (the HF form of ignore_eos),
greedy, one warm-up request first. Each request is one "pass" in the shared offline summary format, so
``best``/``median`` are per-request figures (output tok/s of one request = the seed's single-user speed).
InternLM2 folders are converted to Llama in memory (:mod:`benchmarks.hf_loader`). Imports only torch,
transformers, numpy, matplotlib and the standard library: runs on the GPU machine as is.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.engine_bench import random_prompts
from benchmarks.stats import new_summary, offline_pass, summarize_passes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="HF generate, one request at a time (the seed's serving baseline)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--num-prompts", type=int, default=10)
    ap.add_argument("--input-len", type=int, default=256)
    ap.add_argument("--output-len", type=int, default=256)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if min(args.num_prompts, args.input_len, args.output_len) < 1:
        ap.error("--num-prompts, --input-len and --output-len must be >= 1")
    if not (Path(args.model) / "config.json").is_file():
        ap.error(f"{args.model} is not a model folder (no config.json)")

    import torch

    from benchmarks.hf_loader import load_causal_lm

    model, tokenizer = load_causal_lm(args.model, args.dtype, args.device)
    prompts = random_prompts(tokenizer, args.num_prompts + 1, args.input_len, args.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def generate(ids: list[int]) -> int:
        x = torch.tensor([ids], device=model.device)
        with torch.inference_mode():
            out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=args.output_len,
                                 min_new_tokens=args.output_len, do_sample=False, pad_token_id=pad)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        return out.shape[1] - len(ids)

    generate(prompts[0])  # warm-up
    name = args.name or f"hf-generate-{Path(args.model).name}"
    summary = new_summary(name, "offline", {"kind": "transformers.generate", "model": args.model,
                                            "device": str(model.device), "dtype": str(model.dtype)},
                          {"num_prompts": args.num_prompts, "input_len": args.input_len,
                           "output_len": args.output_len, "one_request_at_a_time": True})
    summary["command"] = "python -m benchmarks.hf_generate_bench " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    for i, ids in enumerate(prompts[1:], start=1):
        start = time.perf_counter()
        n_out = generate(ids)
        step = offline_pass(i, time.perf_counter() - start, 1, len(ids), n_out)
        summary["steps"].append(step)
        print(f"request {i}: {step['elapsed_s']:.3f} s  {step['output_tok_s']:.1f} output tok/s", flush=True)
    summary.update(summarize_passes(summary["steps"]))
    total = sum(s["elapsed_s"] for s in summary["steps"])
    summary["sequential"] = {"elapsed_s": round(total, 3), "req_s": round(args.num_prompts / total, 4),
                             "output_tok_s": round(sum(s["output_tokens"] for s in summary["steps"]) / total, 2)}
    print(f"one at a time: {summary['sequential']['output_tok_s']:.1f} output tok/s, "
          f"{summary['sequential']['req_s']:.3f} req/s; median request {summary['median']['elapsed_s']:.3f} s")
    if args.out:
        from benchmarks.report import write_report

        print(f"wrote {write_report(summary, Path(args.out), f'HF generate baseline: {name}')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Offline engine benchmark of the domain tier: vLLM's ``LLM`` API, N requests x fixed input/output lengths.

    python -m benchmarks.engine_bench --model DIR --num-prompts 1000 --input-len 256 --output-len 256 --passes 3 \
        --out benchmarks/results/h200/engine-default [--engine-arg kv_cache_dtype=fp8 ...]

Prompts are random token ids (seeded, special tokens excluded, inside the tokenizer's range), every request gets
``max_tokens = output-len`` with ``ignore_eos``, so each pass does exactly the same work. All passes run in one
process over the full batch; the first ``--warmup-passes`` (default 1) include warm-up effects and are recorded but
left out of ``best`` and ``median``. Each pass draws NEW prompts (seed + pass number): the same prompts again would
hit vLLM's prefix cache (on by default) and skip the whole prefill, ~30% of the work at 256/256 (the H200 campaign's
passes 2-4 did that). Writes ``summary.json`` (the shared format, kind
``offline``) and ``report.md`` + ``offline.png`` to ``--out``.

Imports only vLLM, numpy, matplotlib and the standard library (no pydantic-settings, no typer): it runs on the GPU
machine as is.
"""

from __future__ import annotations

import argparse
import ast
import shlex
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import new_summary, offline_pass, summarize_passes


def parse_engine_args(items: list[str]) -> dict:
    """``["kv_cache_dtype=fp8", "max_num_seqs=512", "enable_prefix_caching=False"]`` -> kwargs for ``LLM``."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--engine-arg must be KEY=VALUE, got {item!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        out[key.strip().replace("-", "_")] = value
    return out


def random_prompts(tokenizer, num_prompts: int, input_len: int, seed: int) -> list[list[int]]:
    import numpy as np

    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    vocab = len(tokenizer)
    allowed = np.array([i for i in range(vocab) if i not in special], dtype=np.int64)
    rng = np.random.default_rng(seed)
    return rng.choice(allowed, size=(num_prompts, input_len)).tolist()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Offline vLLM engine benchmark (fixed lengths, ignore_eos)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--num-prompts", type=int, default=1000)
    ap.add_argument("--input-len", type=int, default=256)
    ap.add_argument("--output-len", type=int, default=256)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--warmup-passes", type=int, default=1, help="first passes left out of best/median")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--max-model-len", type=int, default=None, help="default input-len + output-len + 16")
    ap.add_argument("--trust-remote-code", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engine-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="extra vllm.LLM keyword argument, repeatable (values parsed as Python literals)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--out", default=None, help="results folder; default: print only")
    args = ap.parse_args(argv)
    for field in ("num_prompts", "input_len", "output_len", "passes"):
        if getattr(args, field) < 1:
            ap.error(f"--{field.replace('_', '-')} must be >= 1")
    try:
        engine_kwargs = parse_engine_args(args.engine_arg)
    except ValueError as exc:
        ap.error(str(exc))
    if not (Path(args.model) / "config.json").is_file():
        ap.error(f"{args.model} is not a model folder (no config.json)")

    from vllm import LLM, SamplingParams

    t0 = time.perf_counter()
    llm = LLM(model=args.model, dtype=args.dtype, trust_remote_code=args.trust_remote_code, seed=args.seed,
              max_model_len=args.max_model_len or args.input_len + args.output_len + 16, **engine_kwargs)
    init_s = time.perf_counter() - t0
    tokenizer = llm.get_tokenizer()
    params = SamplingParams(max_tokens=args.output_len, ignore_eos=True, temperature=1.0, top_p=1.0)

    name = args.name or f"engine-{Path(args.model).name}"
    config = {"model": args.model, "num_prompts": args.num_prompts, "input_len": args.input_len,
              "output_len": args.output_len, "passes": args.passes, "warmup_passes": args.warmup_passes,
              "fresh_prompts_per_pass": True, "dtype": args.dtype,
              "engine_kwargs": engine_kwargs, "init_s": round(init_s, 2)}
    summary = new_summary(name, "offline", {"kind": "vllm.LLM", "model": args.model}, config)
    summary["command"] = "python -m benchmarks.engine_bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        import vllm

        summary["target"]["vllm"] = vllm.__version__
    except AttributeError:
        pass
    for i in range(1, args.passes + 1):
        prompts = random_prompts(tokenizer, args.num_prompts, args.input_len, args.seed + i)
        inputs = [{"prompt_token_ids": ids} for ids in prompts]
        start = time.perf_counter()
        outputs = llm.generate(inputs, params, use_tqdm=False)
        elapsed = time.perf_counter() - start
        n_out = sum(len(o.outputs[0].token_ids) for o in outputs)
        n_in = sum(len(o.prompt_token_ids) for o in outputs)
        step = offline_pass(i, elapsed, len(outputs), n_in, n_out)
        summary["steps"].append(step)
        print(f"pass {i}: {elapsed:.3f} s  {step['req_s']:.1f} req/s  {step['output_tok_s']:.1f} output tok/s  "
              f"{step['total_tok_s']:.1f} total tok/s", flush=True)
    measured = summary["steps"][args.warmup_passes:] or summary["steps"]
    summary.update(summarize_passes(measured))
    print(f"best: {summary['best']['output_tok_s']:.1f} output tok/s ({summary['best']['elapsed_s']:.3f} s); "
          f"median: {summary['median']['output_tok_s']:.1f} output tok/s ({summary['median']['elapsed_s']:.3f} s)")
    if args.out:
        from benchmarks.report import write_report

        print(f"wrote {write_report(summary, Path(args.out), f'Offline engine benchmark: {name}')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

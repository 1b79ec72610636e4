"""Training throughput (tokens/s) of the PEFT LoRA path on a random-weight model of a given shape.

    python -m finetune.bench_lora --shape internlm2-1_8b --steps 30 --json benchmarks/results/lora_h200.json

The same path as `suiqa finetune lora`: build an InternLM2 checkpoint (suiqa.models.builder, random weights),
convert it to the Llama layout (finetune.convert), load it with transformers, add LoRA to all linear layers with
PEFT, and run AdamW steps on fixed-length random-token batches (no padding, so every token counts). Warm-up steps
are not timed. Needs only torch, transformers, peft, safetensors, tokenizers and tqdm (no pydantic-settings,
typer or vLLM), so it runs on a bare GPU image with the repository on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m finetune.bench_lora", description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="tiny", help="suiqa.models.builder.SHAPES key (tiny, internlm2-1_8b)")
    p.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--r", type=int, default=64, help="LoRA rank (XTuner recipe: 64)")
    p.add_argument("--alpha", type=int, default=16)
    p.add_argument(
        "--quantize", choices=["none", "4bit"], default="none", help="4bit = QLoRA (CUDA, bitsandbytes)"
    )
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--workdir", type=Path, default=None, help="where the random checkpoint is built [tmp]")
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    return p.parse_args(argv)


def build_random_llama(shape_name: str, workdir: Path) -> Path:
    """A random InternLM2 checkpoint of ``shape_name`` converted to the Llama layout; the Llama folder."""
    from finetune.convert import internlm2_dir_to_llama
    from suiqa.models import tokenizer as tk
    from suiqa.models.builder import SHAPES, build_internlm2

    if shape_name not in SHAPES:
        raise SystemExit(f"unknown --shape {shape_name!r}; choose from {sorted(SHAPES)}")
    tok = tk.train_tokenizer(tk.INTERNLM2, 2000, list(tk.corpus_texts(max_chars=200_000)))
    internlm2 = build_internlm2(workdir / "internlm2", SHAPES[shape_name], tok, seed=0,
                                device="cuda" if torch.cuda.is_available() else "cpu")
    return internlm2_dir_to_llama(internlm2, workdir / "llama")


def random_batches(vocab: int, batch_size: int, seq_len: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    while True:
        ids = torch.randint(3, vocab, (batch_size, seq_len), generator=gen)
        yield {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}


def run(args: argparse.Namespace) -> dict:
    from finetune.lora import LoraHyper, add_lora, device, load_model, train_steps

    with tempfile.TemporaryDirectory(prefix="bench-lora-") as tmp:
        workdir = args.workdir or Path(tmp)
        t0 = time.perf_counter()
        llama_dir = build_random_llama(args.shape, workdir)
        build_s = time.perf_counter() - t0
        model = load_model(llama_dir, args.quantize)
        if args.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
        model = add_lora(model, LoraHyper(r=args.r, alpha=args.alpha, dropout=0.0))
        trainable, total = model.get_nb_trainable_parameters()
        vocab = model.config.vocab_size
        batches = random_batches(vocab, args.batch_size, args.seq_len)
        dev = device()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        if args.warmup:
            train_steps(model, batches, args.warmup, 2e-4, desc="warm-up")
        losses, tokens, seconds = train_steps(model, batches, args.steps, 2e-4, desc="timed")
    result = {
        "benchmark": "peft_lora_train_throughput",
        "command": "python -m finetune.bench_lora " + " ".join(sys.argv[1:]),
        "shape": args.shape,
        "quantize": args.quantize,
        "lora_r": args.r,
        "lora_alpha": args.alpha,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "steps": args.steps,
        "warmup": args.warmup,
        "gradient_checkpointing": args.gradient_checkpointing,
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "s_per_step": round(seconds / args.steps, 4),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "trainable_params": trainable,
        "total_params": total,
        "build_s": round(build_s, 1),
        "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(next(model.parameters()).dtype),
        "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if dev.type == "cuda"
        else None,
        "torch_threads": torch.get_num_threads(),
        "versions": _versions(),
    }
    return result


def _versions() -> dict[str, str]:
    import peft
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    result = run(args)
    width = max(len(k) for k in result)
    for key in (
        "shape",
        "device",
        "dtype",
        "batch_size",
        "seq_len",
        "lora_r",
        "steps",
        "tokens_per_s",
        "s_per_step",
        "peak_gpu_mem_gib",
        "trainable_params",
        "total_params",
    ):
        print(f"{key:<{width}}  {result[key]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"written: {args.json}")
    return result


if __name__ == "__main__":
    main()

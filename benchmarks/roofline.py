"""Roofline of the offline workload N requests x (I in / O out) for a Llama-like decoder (InternLM2-chat-1.8B).

Per decode step with B running sequences at context length L, the GPU must at least
  - read every weight once:            W  = 2 bytes x (layers x per-layer params + vocab x hidden)
  - read every cached K and V once:     KV = B x L x (2 x layers x kv_heads x head_dim x 2 bytes)
  - do the matmuls:                     F  = 2 x (matmul params) x B
                                          (+ attention 4 x B x L x heads x head_dim x layers)
so a step takes at least max((W + KV) / bandwidth, F / matmul rate). Prefill of N x I tokens costs
2 x params x N x I FLOPs (compute-bound). The workload bound sums prefill and the decode steps of each wave
(B = min(N, max_num_seqs) sequences at a time), with the bandwidth and bf16 matmul rate MEASURED on the same GPU
(``--measure``: a device-to-device copy and an 8192^3 bf16 matmul in torch) or given on the command line.

    python -m benchmarks.roofline --measure --json benchmarks/results/h200/roofline.json

Imports only torch (for --measure) and the standard library, so it runs on the GPU machine as is.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DecoderShape:
    hidden: int = 2048
    layers: int = 24
    heads: int = 16
    kv_heads: int = 8
    intermediate: int = 8192
    vocab: int = 92544
    dtype_bytes: int = 2

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def layer_params(self) -> int:
        qkv = self.hidden * (self.heads + 2 * self.kv_heads) * self.head_dim
        return qkv + self.hidden * self.hidden + 3 * self.hidden * self.intermediate

    @property
    def matmul_params(self) -> int:
        """Weights multiplied per token (the input embedding is a lookup, the LM head a matmul)."""
        return self.layers * self.layer_params + self.vocab * self.hidden

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


def decode_step_s(shape: DecoderShape, batch: int, context: float, bw: float, flops: float) -> tuple[float, str]:
    weight_bytes = shape.matmul_params * shape.dtype_bytes
    kv_bytes = batch * context * shape.kv_bytes_per_token
    mem_s = (weight_bytes + kv_bytes) / bw
    attn = 4 * batch * context * shape.heads * shape.head_dim * shape.layers
    compute_s = (2 * shape.matmul_params * batch + attn) / flops
    return (mem_s, "memory") if mem_s >= compute_s else (compute_s, "compute")


def workload_bound(shape: DecoderShape, n: int, input_len: int, output_len: int, max_num_seqs: int,
                   bw: float, flops: float) -> dict:
    prefill_flops = 2 * shape.matmul_params * n * input_len + 2 * shape.heads * shape.head_dim * shape.layers \
        * n * input_len * input_len
    prefill_s = prefill_flops / flops
    decode_s, bound_by = 0.0, {"memory": 0, "compute": 0}
    remaining = n
    while remaining > 0:
        batch = min(remaining, max_num_seqs)
        for j in range(output_len):
            step, kind = decode_step_s(shape, batch, input_len + j + 0.5, bw, flops)
            decode_s += step
            bound_by[kind] += 1
        remaining -= batch
    total_s = prefill_s + decode_s
    tokens = n * output_len
    return {"max_num_seqs": max_num_seqs, "waves": math.ceil(n / max_num_seqs), "prefill_s": prefill_s,
            "decode_s": decode_s, "total_s": total_s, "output_tok_s": tokens / total_s,
            "decode_steps_memory_bound": bound_by["memory"], "decode_steps_compute_bound": bound_by["compute"]}


def measure(device: str = "cuda") -> tuple[float, float]:
    """(bytes/s of a device-to-device copy counting read + write, bf16 matmul FLOP/s), best of 10 after warm-up."""
    import torch

    x = torch.empty(4 * 1024**3 // 2, dtype=torch.bfloat16, device=device)
    y = torch.empty_like(x)
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device=device)
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device=device)

    def best(fn, reps=10) -> float:
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return min(times)

    bw = 2 * x.numel() * 2 / best(lambda: y.copy_(x))
    flops = 2 * 8192**3 / best(lambda: a @ b)
    return bw, flops


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num-prompts", type=int, default=1000)
    ap.add_argument("--input-len", type=int, default=256)
    ap.add_argument("--output-len", type=int, default=256)
    ap.add_argument("--max-num-seqs", default="256,1024", help="comma list: scheduler caps to evaluate")
    ap.add_argument("--bw-tbs", type=float, default=4.3, help="memory bandwidth, TB/s (read + write)")
    ap.add_argument("--tflops", type=float, default=790.0, help="bf16 dense matmul, TFLOP/s")
    ap.add_argument("--measure", action="store_true", help="measure both on the local GPU instead")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    bw, flops = args.bw_tbs * 1e12, args.tflops * 1e12
    if args.measure:
        bw, flops = measure()
    shape = DecoderShape()
    step_1000 = decode_step_s(shape, 1000, args.input_len + args.output_len / 2, bw, flops)
    result = {
        "shape": asdict(shape), "matmul_params": shape.matmul_params,
        "weight_bytes_per_step": shape.matmul_params * shape.dtype_bytes,
        "kv_bytes_per_token": shape.kv_bytes_per_token,
        "bandwidth_tbs": bw / 1e12, "matmul_tflops": flops / 1e12, "measured": args.measure,
        "workload": {"num_prompts": args.num_prompts, "input_len": args.input_len, "output_len": args.output_len},
        "decode_step_ms_at_1000_seqs_mid_context": step_1000[0] * 1e3, "bound_at_1000": step_1000[1],
        "bounds": [workload_bound(shape, args.num_prompts, args.input_len, args.output_len, int(c), bw, flops)
                   for c in args.max_num_seqs.split(",")],
    }
    print(f"bandwidth {bw / 1e12:.2f} TB/s, bf16 matmul {flops / 1e12:.0f} TFLOP/s "
          f"({'measured' if args.measure else 'given'}); weights/step {result['weight_bytes_per_step'] / 1e9:.2f} GB, "
          f"KV/token {shape.kv_bytes_per_token / 1024:.0f} KiB")
    print("| max_num_seqs | waves | prefill s | decode s | total s | roofline output tok/s |")
    print("|---|---|---|---|---|---|")
    for b in result["bounds"]:
        print(f"| {b['max_num_seqs']} | {b['waves']} | {b['prefill_s']:.2f} | {b['decode_s']:.2f} | "
              f"{b['total_s']:.2f} | {b['output_tok_s']:.0f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()

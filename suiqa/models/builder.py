"""Random-weight checkpoints, built offline and deterministically (seeded): no model hub.

- the domain model in InternLM2 layout (``model_type: internlm2``, our own config class via ``auto_map``), served by
  vLLM's native ``InternLM2ForCausalLM`` with ``--trust-remote-code``;
- the agent model in Qwen2 layout (``Qwen2ForCausalLM``, native everywhere).

Sizes come from a :class:`ModelShape`; ``tiny`` shapes are a few MB for tests and laptops, ``internlm2-1_8b`` and
``qwen2_5-1_5b`` are the real shapes (random weights) for GPU benchmarks. Tensors are drawn directly (no model
object is instantiated), so even the 1.8B shape builds in seconds and without a framework model class.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from suiqa.models import BUILD_STAMP, BUILT_FOLDERS
from suiqa.models import tokenizer as tk
from suiqa.models.internlm2_layout import (
    CONFIG_CLASS_FILE,
    INTERNLM2_CONFIG_HEADER,
    AttentionShape,
    llama_to_internlm2,
)


@dataclass(frozen=True)
class ModelShape:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int | None = None  # None: the tokenizer's size, rounded up to a multiple of 64
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    tie_word_embeddings: bool = False


SHAPES: dict[str, ModelShape] = {
    "tiny": ModelShape(128, 2, 4, 2, 256),
    "internlm2-1_8b": ModelShape(2048, 24, 16, 8, 8192, vocab_size=92544),
    "qwen2_5-1_5b": ModelShape(1536, 28, 12, 2, 8960, vocab_size=151936, rope_theta=1_000_000.0,
                               tie_word_embeddings=True),
}


def _llama_style_state(shape: ModelShape, vocab: int, qkv_bias: bool, seed: int,
                       dtype: torch.dtype, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Random weights; ``device="cuda"`` draws them on the GPU (seconds for the 1.8B shape; other numbers than
    on the CPU for the same seed, deterministic per device)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    head_dim = shape.hidden_size // shape.num_attention_heads
    h, inter = shape.hidden_size, shape.intermediate_size

    def rand(*dims: int) -> torch.Tensor:
        return (torch.randn(*dims, generator=gen, device=device) * 0.02).to(dtype).cpu()

    state = {"model.embed_tokens.weight": rand(vocab, h), "model.norm.weight": torch.ones(h, dtype=dtype)}
    for i in range(shape.num_hidden_layers):
        p = f"model.layers.{i}."
        state[p + "self_attn.q_proj.weight"] = rand(shape.num_attention_heads * head_dim, h)
        state[p + "self_attn.k_proj.weight"] = rand(shape.num_key_value_heads * head_dim, h)
        state[p + "self_attn.v_proj.weight"] = rand(shape.num_key_value_heads * head_dim, h)
        if qkv_bias:
            for proj, n in (("q", shape.num_attention_heads), ("k", shape.num_key_value_heads),
                            ("v", shape.num_key_value_heads)):
                state[p + f"self_attn.{proj}_proj.bias"] = torch.zeros(n * head_dim, dtype=dtype)
        state[p + "self_attn.o_proj.weight"] = rand(h, shape.num_attention_heads * head_dim)
        state[p + "mlp.gate_proj.weight"] = rand(inter, h)
        state[p + "mlp.up_proj.weight"] = rand(inter, h)
        state[p + "mlp.down_proj.weight"] = rand(h, inter)
        state[p + "input_layernorm.weight"] = torch.ones(h, dtype=dtype)
        state[p + "post_attention_layernorm.weight"] = torch.ones(h, dtype=dtype)
    if not shape.tie_word_embeddings:
        state["lm_head.weight"] = rand(vocab, h)
    return state


def _save(state: dict[str, torch.Tensor], config: dict, out: Path, generation: dict) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2), encoding="utf-8")


def _common_config(shape: ModelShape, vocab: int, dtype: str) -> dict:
    return {
        "vocab_size": vocab,
        "hidden_size": shape.hidden_size,
        "intermediate_size": shape.intermediate_size,
        "num_hidden_layers": shape.num_hidden_layers,
        "num_attention_heads": shape.num_attention_heads,
        "num_key_value_heads": shape.num_key_value_heads,
        "hidden_act": "silu",
        "max_position_embeddings": shape.max_position_embeddings,
        "rms_norm_eps": 1e-6,
        "rope_theta": shape.rope_theta,
        "rope_scaling": None,
        "tie_word_embeddings": shape.tie_word_embeddings,
        "torch_dtype": dtype,
        "use_cache": True,
    }


def _vocab(shape: ModelShape, tokenizer_size: int) -> int:
    vocab = shape.vocab_size or -(-tokenizer_size // 64) * 64
    if vocab < tokenizer_size:
        raise ValueError(f"vocab_size {vocab} is smaller than the tokenizer ({tokenizer_size} tokens)")
    return vocab


def build_internlm2(out: Path, shape: ModelShape, tok, seed: int, dtype: str = "bfloat16",
                    device: str = "cpu") -> Path:
    specials = tk.save_tokenizer(tok, tk.INTERNLM2, out, shape.max_position_embeddings)
    vocab = _vocab(shape, tok.get_vocab_size())
    llama = _llama_style_state(shape, vocab, qkv_bias=False, seed=seed, dtype=getattr(torch, dtype), device=device)
    state = llama_to_internlm2(llama, AttentionShape(shape.num_attention_heads, shape.num_key_value_heads,
                                                     shape.hidden_size // shape.num_attention_heads))
    config = {
        **INTERNLM2_CONFIG_HEADER,
        **_common_config(shape, vocab, dtype),
        "bias": False,
        "attn_implementation": "eager",
        "bos_token_id": specials["<s>"],
        "eos_token_id": specials["</s>"],
        "pad_token_id": specials["</s>"],
    }
    eos = [specials["</s>"], specials["<|im_end|>"]]
    _save(state, config, out, {"bos_token_id": specials["<s>"], "eos_token_id": eos, "pad_token_id": eos[0]})
    shutil.copyfile(CONFIG_CLASS_FILE, out / CONFIG_CLASS_FILE.name)
    return out


def build_qwen2(out: Path, shape: ModelShape, tok, seed: int, dtype: str = "bfloat16", device: str = "cpu") -> Path:
    specials = tk.save_tokenizer(tok, tk.QWEN2, out, shape.max_position_embeddings)
    vocab = _vocab(shape, tok.get_vocab_size())
    state = _llama_style_state(shape, vocab, qkv_bias=True, seed=seed, dtype=getattr(torch, dtype), device=device)
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        **_common_config(shape, vocab, dtype),
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": shape.num_hidden_layers,
        "attention_dropout": 0.0,
        "bos_token_id": specials["<|endoftext|>"],
        "eos_token_id": specials["<|im_end|>"],
    }
    eos = [specials["<|im_end|>"], specials["<|endoftext|>"]]
    _save(state, config, out, {"bos_token_id": eos[1], "eos_token_id": eos, "pad_token_id": eos[1]})
    return out


@dataclass(frozen=True)
class BuildSpec:
    """What to build; its hash names the build, so a repeated request is a no-op."""

    domain_shape: str = "tiny"
    agent_shape: str = "tiny"
    tokenizer_vocab: int = 6000
    corpus_chars: int = 2_000_000
    seed: int = 0
    dtype: str = "bfloat16"

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def build_models(out: Path, spec: BuildSpec = BuildSpec(), force: bool = False, device: str = "cpu") -> dict[str, Path]:
    """Build ``out/domain-internlm2`` and ``out/agent-qwen2``; skipped when ``out`` already holds this spec."""
    from tqdm import tqdm

    paths = {role: out / name for role, name in BUILT_FOLDERS.items()}
    stamp = out / BUILD_STAMP
    if not force and stamp.is_file() and json.loads(stamp.read_text())["digest"] == spec.digest() \
            and all((p / "model.safetensors").is_file() for p in paths.values()):
        return paths
    for shape_name in (spec.domain_shape, spec.agent_shape):
        if shape_name not in SHAPES:
            raise ValueError(f"unknown shape {shape_name!r}; choose from {sorted(SHAPES)}")
    for p in paths.values():
        shutil.rmtree(p, ignore_errors=True)
    with tqdm(total=4, desc="tiny models", unit="step", disable=None) as bar:
        texts = list(tk.corpus_texts(max_chars=spec.corpus_chars))
        bar.update(1)
        bar.set_postfix_str("internlm2")
        build_internlm2(paths["domain"], SHAPES[spec.domain_shape],
                        tk.train_tokenizer(tk.INTERNLM2, spec.tokenizer_vocab, texts), spec.seed, spec.dtype, device)
        bar.update(1)
        bar.set_postfix_str("qwen2")
        build_qwen2(paths["agent"], SHAPES[spec.agent_shape],
                    tk.train_tokenizer(tk.QWEN2, spec.tokenizer_vocab, texts), spec.seed + 1, spec.dtype, device)
        bar.update(1)
        stamp.write_text(json.dumps({"digest": spec.digest(), "spec": asdict(spec)}, indent=2))
        bar.update(1)
    return paths

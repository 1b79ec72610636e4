"""Convert between InternLM2 and Llama weight layouts.

InternLM2 is Llama with renamed weights and one fused, head-interleaved QKV projection. For each KV head ``h``
the rows of ``attention.wqkv`` hold, in order, the ``groups = num_heads // num_kv_heads`` query heads that share
it, then its key head, then its value head (``head_dim`` rows each). Both use the rotate-half RoPE convention, so
no permutation of q/k rows is needed.

Converting to Llama lets transformers, PEFT and vLLM run the model natively with no remote code (the fine-tuning
path uses it); converting back gives InternLM2's own layout for tools that expect it (XTuner, the seed's code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

# What every InternLM2 config.json this project writes starts with, and the config class it copies beside it
# (vLLM reads `model_type: internlm2` through this class with --trust-remote-code; no hub code needed).
CONFIG_CLASS_FILE = Path(__file__).with_name("configuration_internlm2.py")
INTERNLM2_CONFIG_HEADER = {
    "architectures": ["InternLM2ForCausalLM"],
    "auto_map": {"AutoConfig": "configuration_internlm2.InternLM2Config"},
    "model_type": "internlm2",
}


@dataclass(frozen=True)
class AttentionShape:
    num_heads: int
    num_kv_heads: int
    head_dim: int

    @property
    def groups(self) -> int:
        return self.num_heads // self.num_kv_heads

    @classmethod
    def from_config(cls, config: dict) -> AttentionShape:
        heads = config["num_attention_heads"]
        return cls(heads, config.get("num_key_value_heads") or heads, config["hidden_size"] // heads)


# (llama name, internlm2 name) for the per-layer weights that only change their name.
_LAYER_RENAMES = [
    ("self_attn.o_proj", "attention.wo"),
    ("mlp.gate_proj", "feed_forward.w1"),
    ("mlp.down_proj", "feed_forward.w2"),
    ("mlp.up_proj", "feed_forward.w3"),
    ("input_layernorm", "attention_norm"),
    ("post_attention_layernorm", "ffn_norm"),
]
_GLOBAL_RENAMES = [
    ("model.embed_tokens.weight", "model.tok_embeddings.weight"),
    ("model.norm.weight", "model.norm.weight"),
    ("lm_head.weight", "output.weight"),
]
_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)\.weight$")


def fuse_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shape: AttentionShape) -> torch.Tensor:
    hidden = q.shape[-1]
    q = q.reshape(shape.num_kv_heads, shape.groups, shape.head_dim, hidden)
    k = k.reshape(shape.num_kv_heads, 1, shape.head_dim, hidden)
    v = v.reshape(shape.num_kv_heads, 1, shape.head_dim, hidden)
    return torch.cat([q, k, v], dim=1).reshape(-1, hidden).contiguous()


def split_qkv(wqkv: torch.Tensor, shape: AttentionShape) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    hidden = wqkv.shape[-1]
    grouped = wqkv.reshape(shape.num_kv_heads, shape.groups + 2, shape.head_dim, hidden)
    q = grouped[:, : shape.groups].reshape(-1, hidden).contiguous()
    k = grouped[:, -2].reshape(-1, hidden).contiguous()
    v = grouped[:, -1].reshape(-1, hidden).contiguous()
    return q, k, v


def llama_to_internlm2(state: dict[str, torch.Tensor], shape: AttentionShape) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    layer_renames = dict(_LAYER_RENAMES)
    for llama_name, internlm_name in _GLOBAL_RENAMES:
        if llama_name in state:
            out[internlm_name] = state[llama_name]
    layers = sorted({int(m.group(1)) for name in state if (m := _LAYER.match(name))})
    for i in layers:
        prefix = f"model.layers.{i}."
        out[prefix + "attention.wqkv.weight"] = fuse_qkv(
            state[prefix + "self_attn.q_proj.weight"],
            state[prefix + "self_attn.k_proj.weight"],
            state[prefix + "self_attn.v_proj.weight"],
            shape,
        )
        for llama_part, internlm_part in layer_renames.items():
            out[f"{prefix}{internlm_part}.weight"] = state[f"{prefix}{llama_part}.weight"]
    _check_all_used(state, out, "Llama")
    return out


def internlm2_to_llama(state: dict[str, torch.Tensor], shape: AttentionShape) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for llama_name, internlm_name in _GLOBAL_RENAMES:
        if internlm_name in state:
            out[llama_name] = state[internlm_name]
    layers = sorted({int(m.group(1)) for name in state if (m := _LAYER.match(name))})
    for i in layers:
        prefix = f"model.layers.{i}."
        q, k, v = split_qkv(state[prefix + "attention.wqkv.weight"], shape)
        out[prefix + "self_attn.q_proj.weight"] = q
        out[prefix + "self_attn.k_proj.weight"] = k
        out[prefix + "self_attn.v_proj.weight"] = v
        for llama_part, internlm_part in _LAYER_RENAMES:
            out[f"{prefix}{llama_part}.weight"] = state[f"{prefix}{internlm_part}.weight"]
    _check_all_used(out, state, "InternLM2")
    return out


def _check_all_used(llama: dict, internlm: dict, source: str) -> None:
    # Every tensor of the source must land somewhere: a silently dropped weight would load as random init.
    n_llama_expected = len(internlm) + 2 * sum(1 for n in internlm if n.endswith("attention.wqkv.weight"))
    if len(llama) != n_llama_expected:
        raise ValueError(f"unexpected {source} weight names: {len(llama)} Llama vs {len(internlm)} InternLM2 tensors")


def internlm2_config_to_llama(config: dict) -> dict:
    """A ``LlamaForCausalLM`` config.json equivalent to an InternLM2 one."""
    keep = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta",
            "rope_scaling", "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype"]
    out = {k: config[k] for k in keep if k in config}
    out.update(architectures=["LlamaForCausalLM"], model_type="llama", attention_bias=bool(config.get("bias")),
               mlp_bias=False, head_dim=config["hidden_size"] // config["num_attention_heads"])
    return out

"""Load a checkpoint into a transformers model, for the HF baselines (no remote code, no hub).

Qwen2 / Llama folders load natively. An InternLM2 folder (``model_type: internlm2``, what `suiqa models
build-tiny` and the real InternLM2-chat-1.8B ship) is converted in memory to transformers' native Llama layout
with :mod:`suiqa.models.internlm2_layout` (fused ``wqkv`` split into q/k/v, weights renamed), so the seed's
transformers serving path can be reproduced without ``trust_remote_code``.

Needs torch, transformers, safetensors (and the repo's ``suiqa.models.internlm2_layout`` and ``finetune.convert``,
which import only torch and suiqa.errors): it runs on the GPU machine as is.
"""

from __future__ import annotations

import json
from pathlib import Path


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_internlm2_as_llama(folder: Path, dtype, device: str):
    """An InternLM2 checkpoint as a ``LlamaForCausalLM`` (converted in memory; the files are not touched)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from finetune.convert import load_state
    from suiqa.models.internlm2_layout import AttentionShape, internlm2_config_to_llama, internlm2_to_llama

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    llama_config = LlamaConfig(**internlm2_config_to_llama(config))
    state = internlm2_to_llama(load_state(folder), AttentionShape.from_config(config))
    with torch.device(device):
        model = LlamaForCausalLM._from_config(llama_config, dtype=dtype)
    if llama_config.tie_word_embeddings:
        state.setdefault("lm_head.weight", state["model.embed_tokens.weight"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("rotary_emb.inv_freq")]
    if missing or unexpected:
        raise ValueError(f"InternLM2 -> Llama conversion left missing={missing[:5]} unexpected={unexpected[:5]}")
    return model.to(device).eval()


def load_causal_lm(model_dir: str | Path, dtype: str = "auto", device: str = "auto"):
    """(model, tokenizer) on ``device`` in eval mode. ``dtype``: auto (the config's) | bfloat16 | float16 | float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a model folder (no config.json)")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if dtype == "auto":
        dtype = config.get("torch_dtype") or config.get("dtype") or "float32"
    torch_dtype = getattr(torch, dtype)
    device = pick_device(device)
    if config.get("model_type") == "internlm2":
        # AutoTokenizer would consult config.json's auto_map (remote code); the tokenizer itself is a plain fast one.
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
        model = load_internlm2_as_llama(folder, torch_dtype, device)
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype).to(device).eval()
    return model, tokenizer

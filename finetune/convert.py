"""Checkpoint folders between the InternLM2 and Llama layouts (the tensor maths is suiqa.models.internlm2_layout).

Why: transformers has no native InternLM2 class (only remote code, which we don't load), while Llama is native in
transformers, PEFT, XTuner (via AutoModelForCausalLM) and vLLM. So fine-tuning runs on the Llama layout, and a
merged model can go back to the InternLM2 layout, the one the production domain profile serves.

Only this module's imports (torch, safetensors, the layout module) are needed: no transformers, no pydantic.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from suiqa.errors import SuiqaError
from suiqa.models.internlm2_layout import (
    CONFIG_CLASS_FILE,
    INTERNLM2_CONFIG_HEADER,
    AttentionShape,
    internlm2_config_to_llama,
    internlm2_to_llama,
    llama_to_internlm2,
)

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "generation_config.json",
)


def read_config(model_dir: Path) -> dict:
    model_dir = Path(model_dir)
    path = model_dir / "config.json"
    if not model_dir.is_dir():
        raise SuiqaError(
            f"model folder not found: {model_dir} (build the tiny one with `suiqa models build-tiny`)"
        )
    if not path.is_file():
        raise SuiqaError(f"{model_dir} has no config.json; is it a model folder?")
    return json.loads(path.read_text(encoding="utf-8"))


def model_type(model_dir: Path) -> str:
    return read_config(model_dir).get("model_type", "")


def load_state(model_dir: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors checkpoint (single file or shards)."""
    from safetensors.torch import load_file

    files = sorted(Path(model_dir).glob("*.safetensors"))
    files = [f for f in files if not f.name.startswith("adapter_")]
    if not files:
        raise SuiqaError(f"{model_dir} has no *.safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def _save(state: dict[str, torch.Tensor], config: dict, src: Path, dst: Path) -> Path:
    from safetensors.torch import save_file

    if dst.resolve() == src.resolve():
        raise SuiqaError(f"conversion output must differ from its input: {dst}")
    dst.mkdir(parents=True, exist_ok=True)
    for old in dst.glob("*.safetensors"):
        if not old.name.startswith("adapter_"):
            old.unlink()
    (dst / "model.safetensors.index.json").unlink(missing_ok=True)
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        str(dst / "model.safetensors"),
        metadata={"format": "pt"},
    )
    (dst / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    for name in TOKENIZER_FILES:  # copied verbatim: a re-save by transformers 5 would break transformers 4.x
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    return dst


def internlm2_dir_to_llama(src: Path, dst: Path) -> Path:
    """Write a ``LlamaForCausalLM`` checkpoint equivalent to the InternLM2 one in ``src``."""
    src, dst = Path(src), Path(dst)
    config = read_config(src)
    if config.get("model_type") != "internlm2":
        raise SuiqaError(f"{src} is not an InternLM2 checkpoint (model_type {config.get('model_type')!r})")
    state = internlm2_to_llama(load_state(src), AttentionShape.from_config(config))
    return _save(state, internlm2_config_to_llama(config), src, dst)


def llama_config_to_internlm2(config: dict) -> dict:
    keep = [
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "hidden_act",
        "max_position_embeddings",
        "rms_norm_eps",
        "rope_theta",
        "rope_scaling",
        "tie_word_embeddings",
        "torch_dtype",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
    ]
    out = dict(INTERNLM2_CONFIG_HEADER)
    out.update({k: config[k] for k in keep if k in config})
    # transformers 5 writes `dtype` and `rope_parameters` where 4.x (and our config class) read the old names
    if "torch_dtype" not in out and "dtype" in config:
        out["torch_dtype"] = config["dtype"]
    rope = dict(config.get("rope_parameters") or {})
    if "rope_theta" not in out and "rope_theta" in rope:
        out["rope_theta"] = rope.pop("rope_theta")
    if "rope_scaling" not in out:
        out["rope_scaling"] = rope if rope.get("rope_type", "default") != "default" else None
    out.update(bias=bool(config.get("attention_bias")), attn_implementation="eager", use_cache=True)
    return out


def llama_dir_to_internlm2(src: Path, dst: Path) -> Path:
    """Write an InternLM2 checkpoint (our config class, vLLM-native weights) equivalent to the Llama one in ``src``."""
    src, dst = Path(src), Path(dst)
    config = read_config(src)
    if config.get("model_type") != "llama":
        raise SuiqaError(f"{src} is not a Llama checkpoint (model_type {config.get('model_type')!r})")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise SuiqaError(f"{src}: Llama checkpoints with biases have no InternLM2 equivalent here")
    shape = AttentionShape(
        config["num_attention_heads"],
        config.get("num_key_value_heads") or config["num_attention_heads"],
        config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"],
    )
    state = load_state(src)
    if config.get("tie_word_embeddings") and "lm_head.weight" in state:
        del state["lm_head.weight"]
    out = _save(llama_to_internlm2(state, shape), llama_config_to_internlm2(config), src, dst)
    shutil.copyfile(CONFIG_CLASS_FILE, out / CONFIG_CLASS_FILE.name)
    return out

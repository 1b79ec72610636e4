"""InternLM2 <-> Llama checkpoint folders: the round trip is bit-exact and the configs carry over."""

from __future__ import annotations

import json

import pytest
import torch

from finetune.convert import (
    internlm2_dir_to_llama,
    llama_config_to_internlm2,
    llama_dir_to_internlm2,
    load_state,
)
from suiqa.errors import SuiqaError


def test_roundtrip_is_bit_exact(tiny_models, tmp_path):
    src = tiny_models["domain"]
    llama = internlm2_dir_to_llama(src, tmp_path / "llama")
    back = llama_dir_to_internlm2(llama, tmp_path / "back")
    original, restored = load_state(src), load_state(back)
    assert original.keys() == restored.keys()
    for name, tensor in original.items():
        assert torch.equal(tensor, restored[name]), name
    l_state = load_state(llama)
    assert "model.layers.0.self_attn.q_proj.weight" in l_state and "output.weight" not in l_state
    cfg, back_cfg = (json.loads((d / "config.json").read_text()) for d in (src, back))
    for key in ("hidden_size", "num_attention_heads", "num_key_value_heads", "rope_theta", "vocab_size"):
        assert back_cfg[key] == cfg[key]
    assert (back / "configuration_internlm2.py").is_file()
    assert (llama / "tokenizer_config.json").read_bytes() == (src / "tokenizer_config.json").read_bytes()


def test_llama_layout_runs_natively_in_transformers(tiny_models, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    llama = internlm2_dir_to_llama(tiny_models["domain"], tmp_path / "llama")
    model = AutoModelForCausalLM.from_pretrained(str(llama), dtype=torch.float32)  # no remote code
    tok = AutoTokenizer.from_pretrained(str(llama))
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "隋朝"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    assert model(ids).logits.shape[-1] == model.config.vocab_size


def test_transformers5_config_names_are_mapped():
    cfg = {
        "model_type": "llama",
        "hidden_size": 8,
        "num_attention_heads": 2,
        "dtype": "bfloat16",
        "rope_parameters": {"rope_theta": 1e6, "rope_type": "default"},
    }
    out = llama_config_to_internlm2(cfg)
    assert (out["rope_theta"], out["rope_scaling"], out["torch_dtype"]) == (1e6, None, "bfloat16")


def test_wrong_layout_and_missing_folder(tiny_models, tmp_path):
    with pytest.raises(SuiqaError, match="not a Llama"):
        llama_dir_to_internlm2(tiny_models["domain"], tmp_path / "x")
    with pytest.raises(SuiqaError, match="model folder not found"):
        internlm2_dir_to_llama(tmp_path / "missing", tmp_path / "y")

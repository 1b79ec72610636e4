"""Adapter and model folders as PEFT's save_pretrained and a Hugging Face checkpoint lay them out (config files +
a weights file), for the tests of serving/lora.py and of `suiqa lora`."""

from __future__ import annotations

import json
from pathlib import Path

SHAPE = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "vocab_size": 1000}


def model_folder(folder: Path, **shape) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**SHAPE, **shape}))
    return folder


def adapter_folder(folder: Path, base: Path | str, r: int = 8, **extra) -> Path:
    folder.mkdir(parents=True)
    config = {"peft_type": "LORA", "r": r, "lora_alpha": 16, "base_model_name_or_path": str(base),
              "target_modules": ["q_proj", "v_proj"], **extra}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(b"\0")
    return folder

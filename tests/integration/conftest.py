"""Fixtures of the integration tests that more than one module uses (the shared stack and vLLM servers are in
tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def finetuned(tiny_models, tmp_path_factory) -> dict[str, Path]:
    from finetune.data import DataConfig, build_dataset
    from finetune.lora import LoraHyper, merge_adapter, train_lora
    from suiqa.paths import data_dir

    root = tmp_path_factory.mktemp("finetune-e2e")
    build_dataset(data_dir() / "poetry-qa", root / "data", DataConfig())
    result = train_lora(
        tiny_models["domain"],
        root / "data" / "val.chat.jsonl",
        root / "run",
        LoraHyper(steps=6, batch_size=4, lr=5e-3),
    )
    merged = merge_adapter(tiny_models["domain"], result.adapter_dir, root / "merged", layout="internlm2")
    return {"adapter": result.adapter_dir, "base_llama": result.base_llama_dir, "merged": merged}

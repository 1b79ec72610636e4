"""Offline model builders: tokenizer, tiny InternLM2 / Qwen2 checkpoints, InternLM2 <-> Llama converter."""

from __future__ import annotations

from pathlib import Path

# build_models' output: these folders beside its stamp file (random weights, whatever the shape)
BUILT_FOLDERS = {"domain": "domain-internlm2", "agent": "agent-qwen2"}
BUILD_STAMP = "BUILD.json"


def is_random_build(folder: str | Path) -> bool:
    """Whether ``folder`` is a checkpoint `suiqa models build-tiny` made (random weights: its text is noise)."""
    folder = Path(folder)
    return folder.name in BUILT_FOLDERS.values() and (folder.parent / BUILD_STAMP).is_file()

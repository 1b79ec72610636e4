"""Where the project reads its data and writes what it generates.

Everything generated (tiny models, the knowledge-base index, logs, run state) lives under one state directory,
``$SUIQA_HOME`` (default ``<repo>/var``), so a clean checkout stays clean and `rm -rf var` resets it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The vendored data (``data/``; see data/SOURCES.md). ``$SUIQA_DATA_DIR`` points elsewhere."""
    return Path(os.environ.get("SUIQA_DATA_DIR", REPO_ROOT / "data"))


def state_dir() -> Path:
    """Root of everything generated at run time."""
    path = Path(os.environ.get("SUIQA_HOME", REPO_ROOT / "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    return state_dir() / "models"


def logs_dir() -> Path:
    path = state_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_dir() -> Path:
    """Pid files and ports of processes started by `suiqa up` / `suiqa serve`."""
    path = state_dir() / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path

"""Progress bars only on a terminal (issue 26: bars flooded the logs of `make demo > log` and CI). Every tqdm bar
in the project says when it draws: `disable=None` (tqdm: off when its stream, stderr, is not a TTY) or a
`progress` flag; and no caller turns that flag on unconditionally."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = [p.parent for p in REPO.glob("*/__init__.py") if p.parent.name != "tests"]


def _calls():
    for package in PACKAGES:
        for path in package.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    yield path.relative_to(REPO).as_posix(), node


def test_every_tqdm_bar_is_off_without_a_terminal_or_behind_a_flag():
    bars = [(path, node) for path, node in _calls() if getattr(node.func, "id", None) == "tqdm"]
    assert len(bars) >= 10  # the walk finds the bars (builder, finetune, benchmarks, the knowledge base)
    for path, node in bars:
        disable = next((k.value for k in node.keywords if k.arg == "disable"), "missing")
        assert (isinstance(disable, ast.Constant) and disable.value is None) or isinstance(disable, ast.UnaryOp), \
            f"{path}:{node.lineno}: tqdm without disable=None"


def test_no_caller_forces_the_progress_flag_on():
    forced = {f"{path}:{node.lineno}" for path, node in _calls()
              for k in node.keywords if k.arg == "progress" and isinstance(k.value, ast.Constant) and k.value.value}
    assert forced == set()

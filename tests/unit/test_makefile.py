"""`make help` is generated from the Makefile's `## ` comments: every target is listed with its line (issue 26: a
newcomer finds the targets without reading the Makefile)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _phony_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    return set(re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split())


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_target_with_its_description():
    out = subprocess.run(["make", "-s", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    listed = {line.split()[1]: " ".join(line.split()[2:]) for line in out.stdout.splitlines()}
    assert _phony_targets() <= set(listed), _phony_targets() - set(listed)
    assert all(listed.values()), [t for t, d in listed.items() if not d]
    assert listed["lint"].startswith("ruff check") and "docs/settings.md" in listed["settings-doc"]
    assert "$(" not in out.stdout  # help text is read literally: no unexpanded make variables

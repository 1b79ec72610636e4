"""Apply hand-made bugs one at a time to a CLEAN CHECKOUT (files edited in place, then restored) and run the fast
unit tests on each: every bug must make them fail. Shared by tests/mutation/issue19_regressions.py and
issue25_regressions.py, which hold only their bugs."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time


def run_cases(cases: list[tuple[str, str, str, str]], tests: list[str], title: str, timeout_s: int) -> list[tuple]:
    """``cases``: (name, file, old text, new text), ``old`` present exactly once. Prints each row and a table."""
    rows = []
    for name, path, old, new in cases:
        p = pathlib.Path(path)
        src = p.read_text(encoding="utf-8")
        assert src.count(old) == 1, (name, src.count(old))
        p.write_text(src.replace(old, new), encoding="utf-8")
        try:
            t = time.monotonic()
            out = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m",
                                  "not integration and not slow", *tests], capture_output=True, text=True,
                                 timeout=timeout_s, check=False)
            failed = [line for line in out.stdout.splitlines() if line.startswith("FAILED")]
            rows.append((name, path, out.returncode != 0, failed[0].split(" - ")[0][7:] if failed else "-",
                         round(time.monotonic() - t)))
        finally:
            p.write_text(src, encoding="utf-8")
        print(rows[-1], flush=True)
    print(f"| {title} | file | caught | first failing test |")
    print("|---|---|---|---|")
    for name, path, caught, test, _ in rows:
        print(f"| {name} | {path} | {'yes' if caught else 'NO'} | {test} |")
    return rows

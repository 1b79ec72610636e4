"""Mutation-testing report from mutmut's results (mutants/**/*.meta) -> benchmarks/results/mutation/.

    python -m tests.mutation.report              # report.md + summary.json for every core module
    python -m tests.mutation.report --sample     # check CI's fixed sample: exit 1 if a sample mutant survived
    python -m tests.mutation.report --unchecked  # the sample mutants mutmut has no verdict for (the Makefile's
                                                 # second pass re-runs just these)
    python -m tests.mutation.report --only deployments/auth.py ...   # a run of some modules (`mutmut run
        "glob*"`): their rows and sections replace those in report.md and summary.json; the other modules' stay
        as they were

Score per module = killed / (killed + survived), where "killed" includes timeouts (the mutant made the tests hang
until mutmut's CPU limit: a failure a user would see) and "survived" includes mutants no fast unit test reaches
(mutmut's "no tests"). Survivors listed in survivors.yaml with ``equivalent: <why>`` (the mutant cannot change
behaviour) leave the denominator; every other survivor stays in it and is listed with its diff. A timeout of a mutant
listed as equivalent leaves it too: its test set outran mutmut's limit without the mutant changing anything (seen for
4 mutants of the request-id middleware, which every route test passes through).
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "benchmarks" / "results" / "mutation"
SAMPLE = OUT / "sample.txt"
SURVIVORS = OUT / "survivors.yaml"
SAMPLE_LOG = REPO / "var" / "mutation-sample.log"
VERDICT_MARKS = frozenset("🎉🫥⏰🤔🙁🔇🧙")  # mutmut's per-mutant result lines (its emoji_by_status)
TARGET = 0.80


def _status(code: int | None) -> str:
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[code]


def load_results() -> dict[str, dict[str, str]]:
    """{module path: {mutant name: status}} for every core module mutmut has mutated."""
    results: dict[str, dict[str, str]] = {}
    for meta in sorted((REPO / "mutants").rglob("*.py.meta")):
        module = str(meta.relative_to(REPO / "mutants"))[: -len(".meta")]
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        results[module] = {name: _status(code) for name, code in codes.items()}
    return results


def mutant_diff(name: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=False).stdout
    lines = [line for line in out.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return "\n".join(lines) or out.strip()


def summarise(results: dict[str, dict[str, str]], notes: dict[str, str]) -> dict:
    modules = {}
    for module, statuses in results.items():
        counts = Counter(statuses.values())
        # a timeout of a mutant shown to be equivalent is a slow test set, not a catch: it leaves the score too
        equivalent = [n for n, s in statuses.items() if s in ("survived", "no tests", "timeout") and
                      str(notes.get(n, "")).startswith("equivalent")]
        slow_equivalent = sum(statuses[n] == "timeout" for n in equivalent)
        killed = counts["killed"] + counts["timeout"] + counts["caught by type check"] - slow_equivalent
        survived = counts["survived"] + counts["no tests"] + counts["suspicious"] + counts["segfault"] \
            - (len(equivalent) - slow_equivalent)
        modules[module] = {
            "mutants": len(statuses), "killed": killed, "timeout": counts["timeout"] - slow_equivalent,
            "survived": survived,
            "equivalent": len(equivalent), "not_checked": counts["not checked"] + counts["skipped"],
            "score": round(killed / (killed + survived), 3) if killed + survived else None,
            "survivors": sorted(n for n, s in statuses.items()
                                if s in ("survived", "no tests", "suspicious", "segfault") and n not in equivalent),
            "equivalents": sorted(equivalent),
        }
    return modules


def _sections(report: str) -> dict[str, str]:
    """{module: its survivors section} of a written report.md."""
    parts = report.split("\n## ")[1:]
    return {part.split("\n", 1)[0].strip(): "\n## " + part.rstrip("\n") for part in parts}


def write_report(modules: dict, notes: dict[str, str], command: str, only: list[str] | None = None) -> None:
    """report.md and summary.json; with ``only``, ``modules`` holds just those (a partial run): each gets
    its own date and command, and the other modules' rows and sections are kept from the files as they
    were."""
    import mutmut

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    OUT.mkdir(parents=True, exist_ok=True)
    kept: dict[str, str] = {}
    header = {"date": now, "command": command}
    if only:
        previous = json.loads((OUT / "summary.json").read_text()) if (OUT / "summary.json").is_file() else {}
        header = {"date": previous.get("date", now), "command": previous.get("command", command)}
        report = (OUT / "report.md").read_text(encoding="utf-8") if (OUT / "report.md").is_file() else ""
        kept = {m: text for m, text in _sections(report).items() if m not in modules}
        new = {m: {**stats, "date": now, "command": command} for m, stats in modules.items()}
        modules = {**{m: v for m, v in previous.get("modules", {}).items() if m not in new}, **new}
    (OUT / "summary.json").write_text(json.dumps({**header, "mutmut": mutmut.__version__, "modules": modules},
                                                 indent=1, ensure_ascii=False) + "\n")
    rows = ["| module | mutants | killed (timeouts) | survived | equivalent | not checked | score |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for module, m in modules.items():
        score = "n/a" if m["score"] is None else f"{m['score']:.0%}"
        flag = "" if m["score"] is None or m["score"] >= TARGET else " ✗"
        rows.append(f"| {module} | {m['mutants']} | {m['killed']} ({m['timeout']}) | {m['survived']} | "
                    f"{m['equivalent']} | {m['not_checked']} | {score}{flag} |")
    by_run: dict[tuple[str, str], list[str]] = {}
    for module, m in modules.items():
        if "date" in m:
            by_run.setdefault((m["date"], m["command"]), []).append(module)
    runs = "".join(f"\n\n{', '.join(names)}: {date}, `{cmd}`." for (date, cmd), names in by_run.items())
    parts = [(f"# Mutation testing report\n\nDate: {header['date']}. mutmut {mutmut.__version__}. Command: "
              f"`{header['command']}` (config: pyproject.toml `[tool.mutmut]`).{runs}\n\nScore = killed / "
              "(killed + survived); timeouts count as killed, mutants no fast unit test reaches count as "
              "survived, equivalents (listed below with the reason; a timeout of one of them too) are left "
              "out. Target: ≥ 80% per module.\n"), *rows, ""]
    for module, m in modules.items():
        if module in kept:
            parts.append(kept[module])
            continue
        if not (m["survivors"] or m["equivalents"]):
            continue
        parts.append(f"\n## {module}\n")
        for name in m["equivalents"] + m["survivors"]:
            reason = notes.get(name, "unexplained: no test pins this yet")
            parts.append(f"- `{name}` — {reason}\n\n```diff\n{mutant_diff(name)}\n```")
    (OUT / "report.md").write_text("\n".join(parts) + "\n", encoding="utf-8")


def _sample_statuses(results: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """{pattern of sample.txt: {mutant name: status}} (an empty dict: the pattern matches no mutant)."""
    lines = (line.strip() for line in SAMPLE.read_text(encoding="utf-8").splitlines())
    patterns = [line for line in lines if line and not line.startswith("#")]
    statuses = {name: status for module in results.values() for name, status in module.items()}
    return {p: {n: s for n, s in statuses.items() if fnmatch.fnmatchcase(n, p)} for p in patterns}


def unchecked_sample(results: dict[str, dict[str, str]]) -> list[str]:
    """The sample mutants mutmut stopped before (no verdict): what a second pass has to run."""
    return sorted(n for matched in _sample_statuses(results).values() for n, s in matched.items()
                  if s == "not checked")


def log_tail(path: Path, lines: int = 15) -> str:
    """The end of mutmut's log without its spinner frames: the last progress count, then whatever it printed
    last (a traceback when it crashed) — what CI shows when the sample did not finish."""
    if not path.is_file():
        return f"({path} is missing)"
    frames = path.read_text(encoding="utf-8", errors="replace").splitlines()  # splits the spinner's \r too
    progress = [f for f in frames if "🎉" in f and "/" in f]
    text = [f for f in frames if f.strip() and "🎉" not in f and f.lstrip()[:1] not in VERDICT_MARKS
            and not any(spin in f for spin in ("Generating mutants", "Running stats", "Running clean tests"))]
    return "\n".join(([f"last progress: {progress[-1].strip()}"] if progress else []) + text[-lines:])


def check_sample(results: dict[str, dict[str, str]], notes: dict[str, str]) -> int:
    """Every sample pattern matches mutants, and each is killed (or a listed equivalent)."""
    sample = _sample_statuses(results)
    bad = []
    for pattern, matched in sample.items():
        if not matched:
            bad.append(f"{pattern}: no such mutant (the code changed: update {SAMPLE.name})")
        bad += [f"{n}: {s}" for n, s in matched.items() if s not in ("killed", "timeout")
                and not str(notes.get(n, "")).startswith("equivalent")]
    print(f"{len(sample)} sample patterns, {len(bad)} problems")
    unchecked = sum(1 for line in bad if line.endswith(": not checked"))
    if unchecked:  # mutmut stopped before these: the Makefile's timeout, or a crash (its log says which)
        print(f"{unchecked} sample mutants not checked: mutmut stopped early. The end of {SAMPLE_LOG.name}:")
        print(log_tail(SAMPLE_LOG))
    print("\n".join(bad))
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", action="store_true", help="check the fixed CI sample only")
    parser.add_argument("--unchecked", action="store_true", help="print the sample mutants left without a verdict")
    parser.add_argument("--command", default="make mutation")
    parser.add_argument("--only", nargs="+", metavar="MODULE",
                        help="module paths of a partial run (see above)")
    args = parser.parse_args()
    results = load_results()
    notes = (yaml.safe_load(SURVIVORS.read_text(encoding="utf-8")) if SURVIVORS.is_file() else None) or {}
    if args.unchecked:
        print(" ".join(unchecked_sample(results)))
        return 0
    if args.sample:
        return check_sample(results, notes)
    if args.only:
        unknown = sorted(set(args.only) - set(results))
        if unknown:
            parser.error(f"not mutated: {', '.join(unknown)}")
        results = {module: results[module] for module in args.only}
    modules = summarise(results, notes)
    write_report(modules, notes, args.command, only=args.only)
    low = [m for m, s in modules.items() if s["score"] is not None and s["score"] < TARGET]
    print(json.dumps({m: s["score"] for m, s in modules.items()}, indent=1))
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())

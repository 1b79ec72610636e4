"""The canary's SLIs before/after a broken knowledge-base build: a table and a plot from `suiqa canary --json` and
`suiqa canary gate-kb --report` outputs.

    suiqa canary --json > out/http.json
    suiqa canary gate-kb --data-dir tests/data/kb_tiny/data --report out/gate.json   # exit 1: refused
    python -m benchmarks.canary_report --http out/http.json --gate out/gate.json --out benchmarks/results/canary

(benchmarks/results/canary/command.sh is the exact sequence that produced the committed files.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SLIS = ("recall_at_5", "citation_validity", "grounding")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--http", type=Path, required=True, help="`suiqa canary --json` output")
    ap.add_argument("--gate", type=Path, required=True, help="`suiqa canary gate-kb --report` output")
    ap.add_argument("--good", type=Path, default=None, help="a gate report of a sound rebuild (promoted)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/canary"))
    args = ap.parse_args(argv)
    http, gate = json.loads(args.http.read_text()), json.loads(args.gate.read_text())
    runs = {"live KB, through the API": http, "live KB, in process (gate)": gate["current"],
            "broken build (candidate)": gate["candidate"]}
    good = json.loads(args.good.read_text()) if args.good else None
    if good is not None:
        runs["sound rebuild (candidate)"] = good["candidate"]
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"runs": {k: {s: v[s] for s in (*SLIS, "questions", "errors", "seconds")} for k, v in runs.items()},
               "thresholds": gate["thresholds"], "decision": gate["decision"], "failures": gate["failures"],
               "sound_rebuild_decision": good["decision"] if good else None}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    t = gate["thresholds"]
    lines = ["# Canary SLIs before/after a broken knowledge-base build (cpu-tiny-shared)", "",
             "Commands: `command.sh` beside this file.", "",
             "| run | questions | recall@5 | citation validity | grounding | errors |", "|---|---|---|---|---|---|"]
    for name, r in summary["runs"].items():
        lines.append(f"| {name} | {r['questions']} | {r['recall_at_5']:.2f} | {r['citation_validity']:.2f} | "
                     f"{r['grounding']:.2f} | {r['errors']} |")
    lines += ["", f"Thresholds: recall@5 >= {t['min_recall_at_5']}, citation validity >= "
              f"{t['min_citation_validity']}, grounding >= {t['min_grounding']}. Gate decision: "
              f"**{gate['decision']}** ({'; '.join(gate['failures']) or 'all SLIs above threshold'})"
              + (f"; the sound rebuild: **{good['decision']}**." if good else "."), ""]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(runs)
    for i, (name, r) in enumerate(summary["runs"].items()):
        ax.bar([x + i * width for x in range(len(SLIS))], [r[s] for s in SLIS], width, label=name)
    for j, key in enumerate(("min_recall_at_5", "min_citation_validity", "min_grounding")):
        ax.hlines(t[key], j - 0.1, j + 0.8, colors="red", linestyles="dashed")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(SLIS))], ["recall@5", "citation validity", "grounding"])
    ax.set_ylim(0, 1.05)
    ax.set_title(f"canary SLIs (dashed: thresholds); gate: {gate['decision']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "canary.png", dpi=110)
    print(f"wrote {args.out}/report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

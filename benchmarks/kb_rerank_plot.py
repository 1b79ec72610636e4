"""The figure of issue 30's re-ranker from the JSON files of benchmarks/kb_rerank_sweep.py: dev recall@5 and @1
of the proximity re-rank over rerank_weight x rerank_span (the choice, dev only), and recall@1/@5/@10 of the
compared configurations on every question set.

    python -m benchmarks.kb_rerank_plot SWEEP_DEV.json COMPARE.json OUT.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _label(overrides: dict) -> str:
    if not overrides:
        return "defaults: proximity w2.0 s16 (new)"
    if overrides.get("rerank", "proximity") == "off":
        parts = ["rerank off (main)"]
    else:
        parts = [f"proximity w{overrides.get('rerank_weight', 2.0)} s{overrides.get('rerank_span', 16)}"]
    parts += [name for key, name in (("coverage_weight", "+coverage"), ("sentence_weight", "+sentences"))
              if overrides.get(key)]
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("compare", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sweep = [r for r in json.loads(args.sweep.read_text())["rows"]
             if r["overrides"].get("rerank") == "proximity" and "sentence_weight" not in r["overrides"]
             and "rerank_depth" not in r["overrides"]]
    weights = sorted({r["overrides"]["rerank_weight"] for r in sweep})
    spans = sorted({r["overrides"]["rerank_span"] for r in sweep})
    compare = json.loads(args.compare.read_text())
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [1, 1, 1.6]})
    for ax, k in zip(axes[:2], ("at_5", "at_1"), strict=True):
        grid = np.full((len(weights), len(spans)), np.nan)
        for r in sweep:
            o = r["overrides"]
            grid[weights.index(o["rerank_weight"]), spans.index(o["rerank_span"])] = r["dev"][k]
        image = ax.imshow(grid, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            if not np.isnan(value):
                ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="white", fontsize=8)
        ax.set_xticks(range(len(spans)), spans)
        ax.set_yticks(range(len(weights)), weights)
        ax.set_xlabel("rerank_span (characters)")
        ax.set_ylabel("rerank_weight")
        ax.set_title(f"dev recall@{k[3:]} (proximity re-rank, depth 50)")
        fig.colorbar(image, ax=ax)
    ax = axes[2]
    sets = compare["sets"]
    rows = compare["rows"]
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        ax.bar(np.arange(len(sets)) + i * width, [row[s]["at_5"] for s in sets], width, label=_label(row["overrides"]))
    ax.set_xticks(np.arange(len(sets)) + 0.4 - width / 2, sets)
    ax.set_ylim(0.6, 1.0)
    ax.set_ylabel("recall@5")
    ax.set_title("recall@5 by question set (held-out sets measured once)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()

"""Issue 30's re-ranker: recall@1/5/10 (by shape, misses at 5 with their class) of re-rank configurations on
ONE question set over ONE loaded index (the default cache), and the per-search CPU cost on one core.

    OMP_NUM_THREADS=1 python -m benchmarks.kb_rerank_sweep --set dev [--configs '<json list>'] [--out FILE]

Only the settings read at query time are swept (the index is loaded once); choose on ``dev``, then measure the
held-out sets once with ``python -m benchmarks.kb_eval_config '<json settings>'``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from tqdm import tqdm

from benchmarks.knowledge_bench import QUESTION_SETS, _classified, _percentiles, _recall

OFF = {"rerank": "off"}  # the fused ranking of main before the re-ranker
SWEEP = [
    OFF,
    {**OFF, "coverage_weight": 1.0},
    {**OFF, "sentence_weight": 0.7},
    {**OFF, "sentence_weight": 0.7, "coverage_weight": 1.0},
    *({"rerank": "proximity", "rerank_weight": w, "rerank_span": s} for w in (0.5, 1.0, 2.0) for s in (20, 40, 80)),
    *({"sentence_weight": 0.7, "rerank": "proximity", "rerank_weight": w, "rerank_span": s}
      for w in (0.5, 1.0, 2.0) for s in (20, 40, 80)),
    # the second, finer sweep around the best of the first (weight 2, span 20)
    *({"rerank": "proximity", "rerank_weight": w, "rerank_span": s} for w in (1.5, 2.0, 3.0, 4.0)
      for s in (12, 16, 20, 25, 30)),
    *({"rerank": "proximity", "rerank_weight": 2.0, "rerank_span": 20, "rerank_depth": d} for d in (10, 20, 30, 100)),
]


def _cost(kb, questions: list[str]) -> dict:
    """CPU time (this thread) of one search, k=5, and of its re-rank step(s) alone, in ms."""
    rerank = kb._rerank_proximity
    spent = [0.0]

    def timed(query, fused):
        c0 = time.thread_time()
        rerank(query, fused)
        spent[0] += time.thread_time() - c0

    kb._rerank_proximity = timed  # this instance only: the search calls it once per query and part
    samples, steps = [], []
    try:
        for q in questions:
            spent[0], c0 = 0.0, time.thread_time()
            kb.search(q, k=5)
            samples.append((time.thread_time() - c0) * 1000)
            steps.append(spent[0] * 1000)
    finally:
        del kb._rerank_proximity
    return {**_percentiles(samples), "rerank_step": _percentiles(steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", choices=sorted(QUESTION_SETS),
                        help="question set(s) (default: dev only)")
    parser.add_argument("--configs", help="JSON list of KnowledgeSettings overrides (default: the sweep)")
    parser.add_argument("--repeat", type=int, default=3, help="timing passes over the questions (0: none)")
    parser.add_argument("--out", type=Path, help="write the JSON here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    from react_tier.knowledge import KnowledgeBase, KnowledgeSettings
    from react_tier.knowledge.evaluation import evaluate, load_questions

    configs = json.loads(args.configs) if args.configs else SWEEP
    base = KnowledgeSettings()
    kb = KnowledgeBase.load(base)
    sets = {name: load_questions(QUESTION_SETS[name]) for name in args.set or ["dev"]}
    texts = [q.question for questions in sets.values() for q in questions]
    kb.search("预热")
    rows = []
    for overrides in tqdm(configs, desc="configurations", disable=None):
        kb.settings = base.model_copy(update=overrides)  # query-time settings only: the index is the same
        row: dict = {"overrides": overrides}
        for name, questions in sets.items():
            got = row[name] = _recall(evaluate(kb, questions, ks=(1, 5, 10)))
            got["miss_classes"] = _classified(kb, questions, got["misses_at_5"])
            classes: dict[str, int] = {}
            for miss in got["miss_classes"].values():
                classes[miss["why"]] = classes.get(miss["why"], 0) + 1
            got["miss_class_counts"] = classes
            tqdm.write(f"{json.dumps(overrides)} {name}: @1/@5/@10 {got['at_1']} / {got['at_5']} / "
                       f"{got['at_10']}  misses {classes}")
        if args.repeat:  # every question of the sets, `repeat` times
            row["search_k5_cpu_ms"] = _cost(kb, texts * args.repeat)
            tqdm.write(f"  cost {json.dumps(row['search_k5_cpu_ms'])}")
        rows.append(row)
    if args.out:
        args.out.write_text(json.dumps({"sets": list(sets), "repeat": args.repeat, "load_average": os.getloadavg(),
                                        "rows": rows}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

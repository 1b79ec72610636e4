"""Knowledge-base benchmark: build time (with the learned lexicon), load time, recall@1/@5/@10 per question shape on
the development questions (tests/data/kb_dev_questions.jsonl, used while tuning) and the held-out questions
(tests/data/kb_heldout_questions.jsonl, never used for tuning), what each retrieval addition buys (ablations over
one index), and search / poem-lookup latency on ONE core over the whole index, single and decomposed queries apart.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.knowledge_bench [--repeat 5] [--no-build]

Prints the tables and writes benchmarks/results/knowledge/<UTC time>.json and .png (recall@5 by shape).
Question sets: dev (tuning), heldout and heldout30 (issue 30's, written before its tuning); misses at 5 are classified
(right document wrong window / multi-fact partial / vocabulary / poem, evaluation.classify_miss).

Configurations (all on the same index; the poem-group passages are in the index in every one of them, the
"structured" switch is the route that puts a named group / 《title》 first):
  baseline      alias table only (the knowledge base before issue 18, plus the group passages)
  +lexicon      + the lexicon learned from the parallel corpus
  +decompose    + query decomposition with search_many (RRF, per-query quota)
  +structured   + the structured poem route
  all           everything (the default settings), and "all -X" without one addition; "all -aliases" shows
                what the learned lexicon does without the hand-written table; "all +coverage" the optional
                coordination-level re-rank (off by default: +1 dev question at @5, -3 at @1)
  all -rerank   without the proximity re-rank of the fused top 50 (react_tier/knowledge/rerank.py; on by
                default since issue 30, so every "all ..." configuration includes it)
  all +dense    the learned dense ranking fused by RRF (react_tier/knowledge/dense.py); the encoder is
                trained in the run (both cores, as `suiqa kb build --dense`; --no-build reuses the cached one)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("results") / "knowledge"
QUESTION_SETS = {"dev": REPO / "tests" / "data" / "kb_dev_questions.jsonl",
                 "heldout": REPO / "tests" / "data" / "kb_heldout_questions.jsonl",
                 # issue 30's 44 new held-out questions, written before its tuning
                 "heldout30": REPO / "tests" / "data" / "kb_heldout30_questions.jsonl"}
OFF = {"use_lexicon": False, "decompose": False, "use_poem_groups": False, "rerank": "off"}
CONFIGS = {
    "baseline": OFF,
    "+lexicon": {**OFF, "use_lexicon": True},
    "+decompose": {**OFF, "decompose": True},
    "+structured": {**OFF, "use_poem_groups": True},
    "all": {},
    "all -lexicon": {"use_lexicon": False},
    "all -decompose": {"decompose": False},
    "all -structured": {"use_poem_groups": False},
    "all -aliases": {"use_aliases": False},  # the learned lexicon alone, without the hand-written table
    "all -aliases -lexicon": {"use_aliases": False, "use_lexicon": False},
    "all -rerank": {"rerank": "off"},  # issue 30: the proximity re-rank of the top 50 (on by default)
    "all +coverage": {"coverage_weight": 1.0},  # the coordination-level re-rank (off by default)
    # issue 30: the sentence granularity (a sentence hit returns its window) and the in-section completion
    "all +sentences": {"sentence_weight": 0.7},
    "all +completion": {"section_completion": True},
    "all +sentences +completion": {"sentence_weight": 0.7, "section_completion": True},
    "all +sentences +coverage": {"sentence_weight": 0.7, "coverage_weight": 1.0},
    # issue 30: the learned dense ranking (weight 0.5: the best dev recall@5 of 0.15 / 0.3 / 0.5 / 1.0)
    "all +dense": {"dense_weight": 0.5},
    "all +sentences +dense": {"sentence_weight": 0.7, "dense_weight": 0.5},
}
# configurations whose misses at 5 are classified (evaluation.classify_miss)
CLASSIFIED = ("all", "all -rerank", "all +sentences", "all +sentences +dense")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"n": len(ordered), "p50_ms": round(pick(0.50), 3), "p99_ms": round(pick(0.99), 3),
            "mean_ms": round(statistics.fmean(ordered), 3), "max_ms": round(ordered[-1], 3)}


def _timed(fn, queries: list) -> dict:
    """Wall-clock and CPU-time (this thread) percentiles in ms. On a shared machine the wall clock includes the
    time other processes hold the core; the thread's CPU time is what one search costs."""
    wall, cpu = [], []
    for q in queries:
        t0, c0 = time.perf_counter(), time.thread_time()
        fn(q)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return {**_percentiles(wall), "cpu": _percentiles(cpu)}


def _recall(report, ks=(1, 5, 10)) -> dict:
    return {"questions": report.questions, **{f"at_{k}": round(report.recall(k), 4) for k in ks},
            "by_shape": report.by_shape(ks), "misses_at_5": report.misses_at_5}


def _classified(kb, questions, misses: list[str]) -> dict[str, dict[str, str]]:
    """{question id: {"shape", "why"}} for the misses at 5 (wrong_window / multi_partial / vocabulary /
    poem)."""
    from react_tier.knowledge.evaluation import classify_miss

    return {q.id: {"shape": q.shape, "why": classify_miss(kb, q, kb.search(q.question, 10))}
            for q in questions if q.id in misses}


def _dense(settings, index_dir: Path, train: bool) -> dict:
    """Train the dense encoder (on both cores, as `suiqa kb build --dense` does) and encode the passages;
    with ``train`` False the default cache's encoder is reused (its training time is in its metadata)."""
    from react_tier.knowledge.base import resolve_dirs
    from react_tier.knowledge.index import build_dense, encoder_file

    data_dir, cache_dir = resolve_dirs(settings)
    pinned = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if pinned is not None:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    t0, c0 = time.perf_counter(), _cpu_seconds()
    try:
        record = build_dense(settings, data_dir, index_dir, encoder_file(settings, cache_dir),
                             progress=sys.stderr.isatty())
    finally:
        if pinned is not None:
            os.sched_setaffinity(0, pinned)
    return {**record, "wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(_cpu_seconds() - c0, 2),
            "trained_here": train}


def run(repeat: int, build: bool) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    from react_tier.knowledge import KnowledgeBase, KnowledgeSettings
    from react_tier.knowledge.evaluation import evaluate, load_questions

    result: dict = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "cores": 1}
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        settings = KnowledgeSettings(cache_dir=Path(tmp)) if build else KnowledgeSettings()
        t0, c0 = time.perf_counter(), _cpu_seconds()
        kb = KnowledgeBase.load(settings)
        first_wall, first_cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        if build:
            result["build_wall_s"] = round(first_wall, 2)
            result["build_cpu_s"] = round(first_cpu, 2)
        result["dense"] = _dense(settings, kb.index_dir, train=build)
        result["lexicon"] = kb.manifest.get("lexicon")
        t0 = time.perf_counter()
        kb = KnowledgeBase.load(settings)
        result["load_cached_s"] = round(time.perf_counter() - t0, 2)
        result["passages"], result["poems"] = len(kb), kb.manifest["poems"]
        result["poem_groups"] = kb.manifest.get("poem_groups")
        result["settings"] = json.loads(settings.model_dump_json(exclude={"data_dir", "cache_dir"}))

        questions = {name: load_questions(path) for name, path in QUESTION_SETS.items()}
        result["questions"] = {name: len(qs) for name, qs in questions.items()}
        result["recall"] = {}
        for config, overrides in CONFIGS.items():
            variant = KnowledgeBase(settings.model_copy(update=overrides), kb.index_dir)
            result["recall"][config] = {name: _recall(evaluate(variant, qs, ks=(1, 5, 10)))
                                        for name, qs in questions.items()}
            if config in CLASSIFIED:
                for name, qs in questions.items():
                    got = result["recall"][config][name]
                    got["miss_classes"] = _classified(variant, qs, got["misses_at_5"])

        rng = random.Random(0)
        every = [q.question for qs in questions.values() for q in qs]
        decomposed = [q for q in every if kb.subqueries(q)]
        single = [q for q in every if q not in decomposed]
        # user-like questions + short keyword queries cut from random passages
        keyword_queries = [kb._records[i]["text"][:12] for i in rng.sample(range(len(kb)), 100)]
        kb.search("预热")  # first-call warm-up (jieba, numpy)
        result["search_k5_single"] = _timed(lambda q: kb.search(q, k=5), single * repeat + keyword_queries)
        result["search_k5_decomposed"] = _timed(lambda q: kb.search(q, k=5), decomposed * repeat)
        sentences = KnowledgeBase(settings.model_copy(update=CONFIGS["all +sentences"]), kb.index_dir)
        result["search_k5_sentences"] = _timed(lambda q: sentences.search(q, k=5),
                                               every * repeat + keyword_queries)
        for config in ("all +dense", "all +sentences +dense"):
            variant = KnowledgeBase(settings.model_copy(update=CONFIGS[config]), kb.index_dir)
            result[f"search_k5_{config.replace('all +', '').replace(' +', '_')}"] = _timed(
                lambda q, v=variant: v.search(q, k=5), every * repeat + keyword_queries)
        baseline = KnowledgeBase(settings.model_copy(update=OFF), kb.index_dir)
        result["search_k5_baseline"] = _timed(lambda q: baseline.search(q, k=5), every * repeat + keyword_queries)
        lines = [p.content.split("，")[0] for p in rng.sample(kb._poems.poems, 100)]
        result["lookup_poem_k5"] = _timed(lambda q: kb.lookup_poem(q, k=5), lines)
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        result["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return result


def print_table(result: dict) -> None:
    rows = []
    if "build_wall_s" in result:
        rows.append(("build (cold cache)", f"{result['build_wall_s']} s wall, {result['build_cpu_s']} s CPU"))
    lexicon = result.get("lexicon") or {}
    learned = (f"{lexicon.get('learn_seconds')} s ({lexicon.get('entries')} entries for "
               f"{lexicon.get('modern_words')} modern words, {lexicon.get('pairs')} pairs)")
    rows += [("  of which lexicon", learned),
             ("load (cached)", f"{result['load_cached_s']} s"),
             ("index", f"{result['passages']} passages, {result['poems']} poems, {result['poem_groups']} groups")]
    dense = result.get("dense") or {}
    trained = dense.get("encoder", {}).get("train_seconds")
    rows.append(("dense encoder + passage vectors",
                 f"{dense.get('wall_s')} s wall, {dense.get('cpu_s')} s CPU (training {trained} s, "
                 f"encoding {dense.get('encode_seconds')} s)"))
    for name in ("search_k5_baseline", "search_k5_single", "search_k5_decomposed", "search_k5_sentences",
                 "search_k5_dense", "search_k5_sentences_dense", "lookup_poem_k5"):
        s = result[name]
        rows.append((f"{name} latency (1 core)", (f"wall p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms; CPU p50 "
                                                 f"{s['cpu']['p50_ms']} ms, p99 {s['cpu']['p99_ms']} ms (n={s['n']})")))
    rows.append(("peak RSS (build + all configs)", f"{result.get('peak_rss_mib')} MiB"))
    rows.append(("load average (1/5/15 min)", str(result.get("load_average"))))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")

    print("\nrecall@1 / @5 / @10 (n questions)")
    for config, sets in result["recall"].items():
        cells = [f"{name} {r['at_1']:.3f} / {r['at_5']:.3f} / {r['at_10']:.3f} (n={r['questions']})"
                 for name, r in sets.items()]
        print(f"  {config:<16} " + "   ".join(cells))

    shapes = sorted({s for sets in result["recall"].values() for r in sets.values() for s in r["by_shape"]})
    for name in result["questions"]:
        print(f"\n{name}: recall@5 by shape (n)   " + "  ".join(
            f"{s}({result['recall']['all'][name]['by_shape'].get(s, {}).get('questions', 0)})" for s in shapes))
        for config, sets in result["recall"].items():
            by = sets[name]["by_shape"]
            print(f"  {config:<16} " + "  ".join(
                f"{by[s]['at_5']:.3f}".rjust(len(s) + 4) if s in by else " " * (len(s) + 4) for s in shapes))
    for config in CLASSIFIED:
        for name in result["questions"]:
            classes = result["recall"][config][name].get("miss_classes", {})
            counts: dict[str, int] = {}
            for row in classes.values():
                counts[row["why"]] = counts.get(row["why"], 0) + 1
            print(f"{name} misses@5 ({config}): {counts} " + ", ".join(
                f"{q}({row['shape']}:{row['why']})" for q, row in classes.items()))


def plot(result: dict, path: Path) -> None:
    """Recall@5 by question shape, one panel per question set, one bar per configuration of CLASSIFIED etc."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = ["baseline", "all", "all +coverage", "all +sentences", "all +completion",
               "all +sentences +coverage", "all +dense", "all +sentences +dense"]
    sets = list(result["questions"])
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4), sharey=True)
    for ax, name in zip(axes, sets, strict=True):
        shapes = sorted(result["recall"]["all"][name]["by_shape"]) + ["ALL"]
        width = 0.8 / len(configs)
        for i, config in enumerate(configs):
            got = result["recall"][config][name]
            values = [got["by_shape"][s]["at_5"] for s in shapes[:-1]] + [got["at_5"]]
            ax.bar([x + i * width for x in range(len(shapes))], values, width, label=config)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(shapes))], shapes)
        ax.set_title(f"{name} (n={result['questions'][name]}): recall@5")
        ax.axhline(0.9, color="grey", lw=0.5, ls="--")
        ax.set_ylim(0, 1.05)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("OMP_NUM_THREADS=1 python -m benchmarks.knowledge_bench", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="passes over the questions for latency")
    parser.add_argument("--no-build", action="store_true", help="use the default cache instead of a cold build")
    args = parser.parse_args()
    result = run(args.repeat, build=not args.no_build)
    print_table(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{result['time'].replace(':', '').replace('+0000', 'Z')}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1))
    plot(result, out.with_suffix(".png"))
    print(f"wrote {out.relative_to(REPO)} and its .png")


if __name__ == "__main__":
    main()

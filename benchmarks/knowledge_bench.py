"""Knowledge-base benchmark: build time, load time, search / poem-lookup latency on ONE core over the whole
index, and recall@1/@5/@10 reported separately on the development questions (tests/data/kb_dev_questions.jsonl,
used while tuning) and the held-out questions (tests/data/kb_heldout_questions.jsonl, not looked at while tuning).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.knowledge_bench [--repeat 5] [--no-build]

Prints a table and writes benchmarks/results/knowledge/<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("results") / "knowledge"
QUESTION_SETS = {"dev": REPO / "tests" / "data" / "kb_dev_questions.jsonl",
                 "heldout": REPO / "tests" / "data" / "kb_heldout_questions.jsonl"}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
    return {"n": len(ordered), "p50_ms": round(pick(0.50), 3), "p99_ms": round(pick(0.99), 3),
            "mean_ms": round(statistics.fmean(ordered), 3), "max_ms": round(ordered[-1], 3)}


def _timed(fn, queries: list) -> list[float]:
    samples = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


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
        t0 = time.perf_counter()
        kb = KnowledgeBase.load(settings)
        result["load_cached_s"] = round(time.perf_counter() - t0, 2)
        result["passages"], result["poems"] = len(kb), kb.manifest["poems"]
        result["settings"] = json.loads(settings.model_dump_json(exclude={"data_dir", "cache_dir"}))

        result["recall"] = {}
        for name, path in QUESTION_SETS.items():
            report = evaluate(kb, load_questions(path), ks=(1, 5, 10))
            result["recall"][name] = {"questions": report.questions, "at_1": round(report.recall(1), 4),
                                      "at_5": round(report.recall(5), 4), "at_10": round(report.recall(10), 4),
                                      "misses_at_5": report.misses_at_5}

        questions = load_questions(QUESTION_SETS["dev"])

        rng = random.Random(0)
        # user-like questions + short keyword queries cut from random passages
        keyword_queries = [kb._records[i]["text"][:12] for i in rng.sample(range(len(kb)), 100)]
        queries = [q.question for q in questions] * repeat + keyword_queries
        kb.search("预热")  # first-call warm-up (jieba, numpy)
        result["search_k5"] = _percentiles(_timed(lambda q: kb.search(q, k=5), queries))
        lines = [p.content.split("，")[0] for p in rng.sample(kb._poems.poems, 100)]
        result["lookup_poem_k5"] = _percentiles(_timed(lambda q: kb.lookup_poem(q, k=5), lines))
    return result


def print_table(result: dict) -> None:
    rows = []
    if "build_wall_s" in result:
        rows.append(("build (cold cache)", f"{result['build_wall_s']} s wall, {result['build_cpu_s']} s CPU"))
    rows += [("load (cached)", f"{result['load_cached_s']} s"),
             ("index", f"{result['passages']} passages, {result['poems']} poems")]
    for name, r in result["recall"].items():
        rows += [(f"{name} recall@1 / @5 / @10",
                  f"{r['at_1']:.3f} / {r['at_5']:.3f} / {r['at_10']:.3f}  (n={r['questions']})"),
                 (f"{name} misses@5", ", ".join(r["misses_at_5"]) or "-")]
    for name in ("search_k5", "lookup_poem_k5"):
        s = result[name]
        rows.append((f"{name} latency (1 core)", f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms (n={s['n']})"))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="passes over the dev questions for latency")
    parser.add_argument("--no-build", action="store_true", help="use the default cache instead of a cold build")
    args = parser.parse_args()
    result = run(args.repeat, build=not args.no_build)
    print_table(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{result['time'].replace(':', '').replace('+0000', 'Z')}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1))
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()

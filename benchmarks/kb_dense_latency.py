"""What the dense ranking alone costs per query on ONE core: encoding the query (numpy row sum), the matmul
against the 10,496 x 64 passage vectors and the top-k cut (``KnowledgeBase._dense_ranking``), over the 213
benchmark questions x 3, CPU time of this thread. Measured 0.12 ms p50 / 0.23 ms p99 (matmul 0.04 ms),
which is why no vector-index library is used (benchmarks/results/knowledge/ISSUE30.md).

    OMP_NUM_THREADS=1 python -m benchmarks.kb_dense_latency    # needs `suiqa kb build --dense` first
"""

from __future__ import annotations

import os
import time

from benchmarks.knowledge_bench import QUESTION_SETS, _percentiles


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from react_tier.knowledge import KnowledgeBase, KnowledgeSettings
    from react_tier.knowledge.evaluation import load_questions

    kb = KnowledgeBase.load(KnowledgeSettings(dense_weight=0.5))
    tokens = [kb.query_tokens(q.question) for path in QUESTION_SETS.values() for q in load_questions(path)]
    encoder, vectors = kb._dense
    parts = {"encode": lambda t: encoder.encode([" ".join(t.words + [f for f, _ in t.extra_words])]),
             "matmul": lambda t: vectors @ vectors[0],
             "dense_ranking": lambda t: kb._dense_ranking(t.words, t.extra_words)}
    print(f"passage vectors {vectors.shape}, {vectors.nbytes / 2**20:.1f} MiB")
    for name, fn in parts.items():
        cpu = []
        for t in tokens * 3:
            c0 = time.thread_time()
            fn(t)
            cpu.append((time.thread_time() - c0) * 1000)
        print(name, _percentiles(cpu))


if __name__ == "__main__":
    main()

"""Recall@1/5/10 (and by shape, misses at 5) of ONE retrieval configuration on every question set, over the
default index cache: the quick check of a setting chosen on dev, without the full knowledge_bench run.

    python -m benchmarks.kb_eval_config '{"sentence_weight": 0.7, "dense_weight": 0.3}'

(dense_weight > 0 needs `suiqa kb build --dense`; the manifest's encoder is printed with the result.)
"""

from __future__ import annotations

import argparse
import json

from benchmarks.knowledge_bench import QUESTION_SETS, _recall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", help="JSON object of KnowledgeSettings fields")
    args = parser.parse_args()
    from react_tier.knowledge import KnowledgeBase, KnowledgeSettings
    from react_tier.knowledge.evaluation import evaluate, load_questions

    settings = KnowledgeSettings().model_copy(update=json.loads(args.overrides))
    kb = KnowledgeBase.load(settings)
    encoder = (kb.manifest.get("dense") or {}).get("encoder_sha256", "")[:12] or None
    print(json.dumps({"overrides": json.loads(args.overrides), "encoder": encoder}, ensure_ascii=False))
    for name, path in QUESTION_SETS.items():
        got = _recall(evaluate(kb, load_questions(path), ks=(1, 5, 10)))
        shapes = {s: r["at_5"] for s, r in got["by_shape"].items()}
        print(f"{name}: @1/@5/@10 {got['at_1']} / {got['at_5']} / {got['at_10']}  @5 by shape {shapes}  "
              f"misses@5 {got['misses_at_5']}")


if __name__ == "__main__":
    main()

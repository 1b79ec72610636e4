"""Fixed-length prompts for the online GPU benchmark: N lines of corpus text, each exactly ``--tokens`` tokens long
under the served model's tokenizer (slices of the tokenized 隋书 text, decoded back), for ``/v1/completions``.

    python -m benchmarks.gpu.make_prompts --tokenizer /tmp/models/domain-internlm2 --tokens 256 --n 2000 --out F

Needs only the ``tokenizers`` package.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True, help="model folder with tokenizer.json")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    tok = Tokenizer.from_file(str(Path(args.tokenizer) / "tokenizer.json"))
    src = REPO / "data/knowledge/book_of_sui/suishu_classical.jsonl"
    ids: list[int] = []
    for line in src.read_text(encoding="utf-8").splitlines():
        text = json.loads(line)["text"].replace("\n", "")
        ids.extend(tok.encode(text, add_special_tokens=False).ids)
        if len(ids) >= args.n * args.tokens:
            break
    prompts, lengths = [], []
    for i in range(args.n):
        text = tok.decode(ids[i * args.tokens:(i + 1) * args.tokens]).replace("\n", " ")
        prompts.append(text)
        lengths.append(len(tok.encode(text, add_special_tokens=False).ids))
    Path(args.out).write_text("\n".join(prompts) + "\n", encoding="utf-8")
    print(f"wrote {len(prompts)} prompts to {args.out}; tokens min/mean/max "
          f"{min(lengths)}/{sum(lengths) / len(lengths):.1f}/{max(lengths)}")


if __name__ == "__main__":
    main()

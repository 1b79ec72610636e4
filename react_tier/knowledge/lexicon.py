"""A modern -> classical lexicon learned from the parallel corpus (隋书 and 资治通鉴·隋纪 with their line-aligned
modern translations, 12,349 pairs), used to expand a modern question with the words the sources use.

IBM Model 1 (Brown et al. 1993): the classical tokens of a line are generated, each independently, by one of the
modern words of its translation or by NULL; EM estimates t(classical | modern). Model 1 explains away: in a line
"高祖崩于大宝殿" / "高祖在大宝殿去世", 高祖 and 大宝殿 are explained by their literal translations, which leaves
崩 to 去世. Tokens are jieba words on both sides. On the modern side, question function words are dropped, as for
queries. On the classical side the words are mostly single characters (崩, 拜, 薨) with some longer words (改元,
上表, 即位).

Five EM iterations over the 3.55M (modern word or NULL, classical token) alignment slots are vectorised with
numpy. The model is trained in both directions, because one direction alone lets a frequent classical character
soak up rare modern words. An entry w -> c needs support from both: t(c|w) >= ``min_fwd`` and t(w|c) >=
``min_rev``. Its score is sqrt(t(c|w) * t(w|c)): 去世 -> 卒 0.75, 派 -> 遣 0.69, 年号 -> 改元 0.41, 打败 -> 破 0.35,
去世 -> 崩 0.13. Training costs about 5-8 s of CPU once per data hash. The lexicon is written into the index folder,
like the index.

An entry is kept when:
- w and c each occur in at least ``min_count`` lines;
- c is not w itself, and does not consist only of characters of w (the character index already matches those);
- c is not a function character of classical prose (之 其 而 以 ...), which would match every passage.

At most ``per_word`` entries are kept per modern word, best first. The query side weighs an expansion by its score
times ``lexicon_weight``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# classical function characters and particles: frequent, carry no fact, and would match nearly every window
CLASSICAL_FUNCTION = frozenset("之其而以于为所也者乃则焉矣哉乎与及曰云因遂即既又亦皆并尚且若如此彼是无不未非有")
LEXICON_FORMAT = 1
# a one-character word of a question is often a fragment of a name jieba did not know (卢 of 卢思道 -> 卢贲, 卢恺):
# its expansions are used only when they are strong (派 -> 遣 0.69, 杀 -> 斩 0.22; 卢 -> 贲 0.13 is left out)
MIN_SINGLE_CHAR_SCORE = 0.2


@dataclass(frozen=True)
class LexiconParams:
    iterations: int = 5
    min_count: int = 3  # lines a modern word and a classical form must each occur in
    min_fwd: float = 0.02  # t(classical | modern)
    min_rev: float = 0.05  # t(modern | classical)
    per_word: int = 4


def _pairs_tokens(pairs: Iterable[tuple[str, str]], tokenizer) -> tuple[list[list[str]], list[list[str]]]:
    from react_tier.knowledge.text import fold_variants

    modern_side, classical_side = [], []
    for modern, classical in pairs:
        modern_side.append(tokenizer.content_words(fold_variants(modern)))
        classical_side.append(tokenizer.plain_words(fold_variants(classical)))
    return modern_side, classical_side


def train_model1(modern_side: list[list[str]], classical_side: list[list[str]], iterations: int
                 ) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IBM Model 1 EM. Returns (modern vocab, classical vocab, pair modern ids, pair classical ids, t per pair,
    modern line counts); index 0 of the modern vocab is NULL."""
    m_vocab: dict[str, int] = {"<NULL>": 0}
    c_vocab: dict[str, int] = {}
    rows_e, rows_f, rows_slot = [], [], []
    slot = 0
    m_line_counts: dict[int, int] = {}
    for modern, classical in zip(modern_side, classical_side, strict=True):
        if not modern or not classical:
            continue
        e_ids = [0] + sorted({m_vocab.setdefault(w, len(m_vocab)) for w in modern})
        for e in e_ids[1:]:
            m_line_counts[e] = m_line_counts.get(e, 0) + 1
        f_ids = [c_vocab.setdefault(w, len(c_vocab)) for w in classical]
        e_arr = np.asarray(e_ids, dtype=np.int64)
        for f in f_ids:  # every classical token position: one slot, aligned to one of e_ids
            rows_e.append(e_arr)
            rows_f.append(np.full(len(e_arr), f, dtype=np.int64))
            rows_slot.append(np.full(len(e_arr), slot, dtype=np.int64))
            slot += 1
    e = np.concatenate(rows_e)
    f = np.concatenate(rows_f)
    slots = np.concatenate(rows_slot)
    n_f = len(c_vocab)
    pair_key, pair_index = np.unique(e * n_f + f, return_inverse=True)
    pair_e, pair_f = pair_key // n_f, pair_key % n_f
    t = np.full(len(pair_key), 1.0 / n_f)
    for _ in range(iterations):
        numerators = t[pair_index]
        denominators = np.bincount(slots, weights=numerators, minlength=slot)
        posterior = numerators / denominators[slots]
        counts = np.bincount(pair_index, weights=posterior, minlength=len(pair_key))
        totals = np.bincount(pair_e, weights=counts, minlength=len(m_vocab))
        t = counts / totals[pair_e]
    m_lines = np.zeros(len(m_vocab), dtype=np.int64)
    for e_id, n in m_line_counts.items():
        m_lines[e_id] = n
    return list(m_vocab), list(c_vocab), pair_e, pair_f, t, m_lines


@dataclass
class Lexicon:
    """modern word -> [(classical form, t(classical | modern))], best first."""

    entries: dict[str, list[tuple[str, float]]]
    meta: dict

    @classmethod
    def learn(cls, pairs: Iterable[tuple[str, str]], tokenizer, params: LexiconParams = LexiconParams()
              ) -> Lexicon:
        started = time.perf_counter()
        modern_side, classical_side = _pairs_tokens(pairs, tokenizer)
        # forward: modern words generate the classical line -> t(c|w); reverse: classical generates modern -> t(w|c)
        m_vocab, c_vocab, pair_e, pair_f, t_fwd, m_lines = train_model1(modern_side, classical_side,
                                                                        params.iterations)
        r_c_vocab, r_m_vocab, r_c, r_m, t_rev, c_lines = train_model1(classical_side, modern_side,
                                                                      params.iterations)
        c_count = dict(zip(r_c_vocab, c_lines.tolist(), strict=True))
        keep_rev = t_rev >= params.min_rev
        reverse = {(r_m_vocab[m], r_c_vocab[c]): p for c, m, p in
                   zip(r_c[keep_rev].tolist(), r_m[keep_rev].tolist(), t_rev[keep_rev].tolist()) if c}
        keep = (t_fwd >= params.min_fwd) & (m_lines[pair_e] >= params.min_count) & (pair_e > 0)
        scored: dict[str, list[tuple[str, float]]] = {}
        for e_id, f_id, fwd in zip(pair_e[keep].tolist(), pair_f[keep].tolist(), t_fwd[keep].tolist()):
            modern, form = m_vocab[e_id], c_vocab[f_id]
            rev = reverse.get((modern, form))
            if (rev is None or c_count.get(form, 0) < params.min_count or form == modern
                    or all(ch in modern for ch in form) or form in CLASSICAL_FUNCTION):
                continue
            scored.setdefault(modern, []).append((form, round(math.sqrt(fwd * rev), 4)))
        entries = {w: sorted(forms, key=lambda x: (-x[1], x[0]))[:params.per_word] for w, forms in scored.items()}
        meta = {"format": LEXICON_FORMAT, "pairs": len(modern_side), "params": params.__dict__,
                "modern_words": len(entries), "entries": sum(map(len, entries.values())),
                "learn_seconds": round(time.perf_counter() - started, 2)}
        return cls(dict(sorted(entries.items())), meta)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"meta": self.meta, "entries": self.entries}, ensure_ascii=False,
                                   sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> Lexicon:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls({w: [(f, p) for f, p in forms] for w, forms in data["entries"].items()}, data["meta"])

    def forms(self, word: str) -> list[tuple[str, float]]:
        return self.entries.get(word, [])

    def expand(self, words: Iterable[str], skip: Iterable[str] = ()) -> list[tuple[str, float]]:
        """(classical form, weight) for the query's words, best weight per form; words in ``skip`` (those the
        hand-written alias table already maps) are left to the table."""
        skip = set(skip)
        best: dict[str, float] = {}
        for word in words:
            if word in skip:
                continue
            for form, prob in self.forms(word):
                if len(word) == 1 and prob < MIN_SINGLE_CHAR_SCORE:
                    continue
                best[form] = max(best.get(form, 0.0), prob)
        return sorted(best.items(), key=lambda x: (-x[1], x[0]))


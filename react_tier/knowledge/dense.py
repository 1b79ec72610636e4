"""The learned retriever: a bag-of-character-n-gram bi-encoder trained on the corpus itself (there is no model
hub here), used beside BM25 as one more ranking of the reciprocal-rank fusion (``dense_weight``).

Why this shape: the questions are modern Chinese, the evidence classical; BM25 only matches the characters a
question shares with a passage (plus the alias table / lexicon). An encoder whose only parameters are one
vector per character unigram/bigram (a sum of them, L2-normalised) learns from the 12,349 aligned
modern/classical sentence pairs that 去世 sits near 卒/崩, and from synthetic questions cut from the windows
(the section's subject + a span of one of its sentences) which window a span belongs to. It trains in about a
minute on 2 cores (torch, sparse gradients, in-batch negatives) and needs no torch at query time: encoding a
query is a numpy row sum, the search a matmul over ~10.5k x 64 float32 passage vectors (< 1 ms on one core,
measured in benchmarks/knowledge_bench.py), so no vector-index library is needed.

The weights (``encoder.npz``: vocabulary + matrix, 51 MB) are built by ``suiqa kb build --dense`` under the
index cache, never committed; the index's manifest records the sha256 of the encoder that encoded its
passages, and a missing or different encoder file is refused with an error naming that command.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from react_tier.knowledge.text import CJK_RUN, char_bigrams, search_form
from suiqa.errors import SuiqaError

ENCODER_FORMAT = 1
DENSE_VECTORS = "dense.npy"
REBUILD_HINT = "run `suiqa kb build --dense` (add --force to retrain the encoder)"


def features(text: str) -> list[str]:
    """The distinct character unigrams and bigrams of a text's CJK runs (search form)."""
    text = search_form(text)
    return list(dict.fromkeys([ch for run in CJK_RUN.findall(text) for ch in run] + char_bigrams(text)))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Encoder:
    """The trained encoder at query / index time (numpy only)."""

    vocab: dict[str, int]
    weights: np.ndarray  # (vocabulary, dim) float32
    sha256: str
    meta: dict

    @classmethod
    def load(cls, path: Path) -> Encoder:
        if not path.is_file():
            raise SuiqaError(f"dense retrieval needs the encoder {path}, which is missing; {REBUILD_HINT}")
        with np.load(path, allow_pickle=False) as data:
            tokens, weights, meta = data["vocab"].tolist(), data["weights"], json.loads(str(data["meta"]))
        if meta.get("format") != ENCODER_FORMAT:
            raise SuiqaError(f"encoder {path} has format {meta.get('format')}, this code reads "
                             f"{ENCODER_FORMAT}; {REBUILD_HINT}")
        return cls({t: i for i, t in enumerate(tokens)}, weights.astype(np.float32), file_sha256(path), meta)

    def save(self, path: Path) -> None:
        """Atomically (a temporary sibling renamed into place)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tokens = sorted(self.vocab, key=self.vocab.__getitem__)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        with tmp.open("wb") as fh:
            np.savez(fh, vocab=np.array(tokens), weights=self.weights, meta=np.array(json.dumps(self.meta)))
        tmp.replace(path)
        self.sha256 = file_sha256(path)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised (a text with no known n-gram is all zeros)."""
        out = np.zeros((len(texts), self.weights.shape[1]), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = [self.vocab[t] for t in features(text) if t in self.vocab]
            if ids:
                vector = self.weights[ids].sum(axis=0)
                norm = float(np.linalg.norm(vector))
                out[row] = vector / norm if norm > 0 else vector
        return out


@dataclass(frozen=True)
class TrainConfig:
    dim: int = 64
    epochs: int = 4
    batch: int = 512
    lr: float = 0.01
    temperature: float = 0.05
    min_count: int = 2
    max_vocab: int = 200_000
    seed: int = 0


def train(pairs: list[tuple[str, str, str]], config: TrainConfig, progress: bool = False) -> Encoder:
    """Train on (query, document, document key) triples: symmetric InfoNCE with in-batch negatives (other
    queries' documents; a batch's copies of the same document key are masked, not negatives). Seeded and
    deterministic (one ordering per epoch from ``seed``, deterministic torch kernels)."""
    import torch
    from tqdm import tqdm

    started = time.perf_counter()
    texts = list(dict.fromkeys(t for q, d, _ in pairs for t in (q, d)))
    counts = Counter(t for text in texts for t in features(text))
    kept = sorted((t for t, c in counts.items() if c >= config.min_count), key=lambda t: (-counts[t], t))
    vocab = {t: i for i, t in enumerate(kept[:config.max_vocab])}
    key_ids: dict[str, int] = {}
    doc_ids: dict[str, list[int]] = {}  # a window is the document of each of its sentences: featurise it once
    encoded = []
    for q, d, key in pairs:
        if d not in doc_ids:
            doc_ids[d] = [vocab[t] for t in features(d) if t in vocab]
        encoded.append(([vocab[t] for t in features(q) if t in vocab], doc_ids[d],
                        key_ids.setdefault(key, len(key_ids))))
    encoded = [row for row in encoded if row[0] and row[1]]
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True)
    bag = torch.nn.EmbeddingBag(len(vocab), config.dim, mode="sum", sparse=True)
    torch.nn.init.normal_(bag.weight, std=0.1)
    optimizer = torch.optim.SparseAdam(list(bag.parameters()), lr=config.lr)
    rng = random.Random(config.seed)

    def embed(rows: list[list[int]]) -> torch.Tensor:
        flat = torch.tensor([i for r in rows for i in r], dtype=torch.long)
        offsets = torch.tensor([0, *np.cumsum([len(r) for r in rows[:-1]]).tolist()], dtype=torch.long)
        return torch.nn.functional.normalize(bag(flat, offsets), dim=1)

    steps = config.epochs * max(1, len(encoded) // config.batch)
    bar = tqdm(total=steps, desc="kb: training the dense encoder", unit="batch", disable=not progress)
    losses: list[float] = []
    for _ in range(config.epochs):
        order = list(range(len(encoded)))
        rng.shuffle(order)
        for start in range(0, max(1, len(order) - config.batch + 1), config.batch):
            batch = [encoded[i] for i in order[start:start + config.batch]]
            q, d = embed([b[0] for b in batch]), embed([b[1] for b in batch])
            logits = q @ d.T / config.temperature
            keys = torch.tensor([b[2] for b in batch])
            same = (keys[:, None] == keys[None, :]) & ~torch.eye(len(batch), dtype=torch.bool)
            logits = logits.masked_fill(same, float("-inf"))
            target = torch.arange(len(batch))
            loss = (torch.nn.functional.cross_entropy(logits, target)
                    + torch.nn.functional.cross_entropy(logits.T, target)) / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    meta = {"format": ENCODER_FORMAT, **config.__dict__, "pairs": len(encoded), "vocabulary": len(vocab),
            "steps": len(losses), "first_loss": round(losses[0], 4) if losses else None,
            "last_loss": round(losses[-1], 4) if losses else None,
            "train_seconds": round(time.perf_counter() - started, 2)}
    return Encoder(vocab, bag.weight.detach().numpy().astype(np.float32), "", meta)


def training_pairs(docs: list, bilingual: list[tuple[str, str]], seed: int = 0) -> list[tuple[str, str, str]]:
    """(query, document, key) triples from the corpus alone: each aligned (modern, classical) sentence pair;
    for each history sentence a synthetic question = its section's subject + a 6-24 character span of the
    sentence or its translation, whose document is the window that owns the sentence; for each biography /
    poem / poem group its title (+ a span of its text) -> the passage. ``docs``: the index's Documents."""
    rng = random.Random(seed)
    triples = [(modern, classical, f"pair:{n}") for n, (modern, classical) in enumerate(bilingual)]

    def span(text: str) -> str:
        if len(text) <= 8:
            return text
        size = rng.randint(6, min(24, len(text)))
        start = rng.randint(0, len(text) - size)
        return text[start:start + size]

    for doc in docs:
        body = " ".join(doc.search_pieces)
        if doc.sentence_units:
            for unit in doc.sentence_units:
                heading, _, rest = unit.partition(" ")
                triples.append((f"{heading} {span(rest)}", body, doc.id))
        else:
            title = search_form(doc.title)
            triples.append((title, body, doc.id))
            triples.append((f"{title} {span(search_form(doc.text))}", body, doc.id))
    return triples

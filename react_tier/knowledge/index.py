"""Building, caching and loading the index: two BM25 indexes (jieba words, character uni+bigrams) over the
passages, a third over the history sentences (the child units of the windows, each mapped to the window that
owns it: 49,957 sentences for 10,496 passages), the passages, poems and poem groups themselves, and the
modern->classical lexicon learned from the parallel corpus (:mod:`.lexicon`).

The cache lives in ``<cache_dir>/<key>/`` where the key hashes the data files, the settings that shape the
index and INDEX_FORMAT; a build writes into a temporary folder and renames it into place, so concurrent
builders and readers never see a half-written index.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from react_tier.knowledge import aliases
from react_tier.knowledge.corpus import (
    DATA_FILES,
    SUISHU_BILINGUAL,
    SUISHU_CLASSICAL,
    ZZTJ_BILINGUAL,
    ZZTJ_CLASSICAL,
    Document,
    biography_documents,
    history_documents,
    load_poems,
    poem_documents,
    poem_group_documents,
)
from react_tier.knowledge.lexicon import Lexicon
from react_tier.knowledge.models import Poem
from react_tier.knowledge.poem_groups import PoemGroup, build_groups
from react_tier.knowledge.settings import KnowledgeSettings
from react_tier.knowledge.text import WordTokenizer, char_bigrams
from suiqa.errors import SuiqaError

INDEX_FORMAT = 12  # bump when the builder or the tokenisation changes
# what a complete index folder holds (KnowledgeBase refuses a folder missing one, naming it)
INDEX_FILES = ("manifest.json", "passages.jsonl", "poems.jsonl", "poem_groups.jsonl", "lexicon.json",
               "sentence_owner.json", "word", "char", "sent")
INDEX_SHAPING_FIELDS = ("window_chars", "window_stride_chars", "extra_poem_authors")


def jieba_extra_words() -> tuple[str, ...]:
    """Names and classical forms from the alias table, so that documents and queries split them the same way."""
    words = {w for key, forms in aliases.ALIASES.items() for w in (key, *forms) if len(w) >= 2}
    return tuple(sorted(words))


def char_tokens(text: str) -> list[str]:
    """Single CJK characters plus overlapping bigrams (single characters carry 崩, 讳X and one-name people)."""
    from react_tier.knowledge.text import CJK_RUN

    return [ch for run in CJK_RUN.findall(text) for ch in run] + char_bigrams(text)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(settings: KnowledgeSettings, data_dir: Path) -> tuple[str, dict[str, str]]:
    """(key, {data file: sha256}). Missing data files raise a SuiqaError that names them."""
    missing = [name for name in DATA_FILES if not (data_dir / name).is_file()]
    if missing:
        raise SuiqaError(f"knowledge data missing under {data_dir}: {', '.join(missing)}")
    hashes = {name: file_sha256(data_dir / name) for name in DATA_FILES}
    shaping = {name: getattr(settings, name) for name in INDEX_SHAPING_FIELDS}
    material = json.dumps({"format": INDEX_FORMAT, "files": hashes, "settings": shaping,
                           "aliases": aliases.ALIASES}, sort_keys=True, ensure_ascii=False, default=list)
    return hashlib.sha256(material.encode()).hexdigest()[:16], hashes


def bilingual_pairs(data_dir: Path) -> list[tuple[str, str]]:
    """(modern, classical) line pairs of 隋书 and 资治通鉴·隋纪 (the lexicon's training data), in file order."""
    pairs = []
    for name in (SUISHU_BILINGUAL, ZZTJ_BILINGUAL):
        with (data_dir / name).open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    pairs.append((row["modern"], row["classical"]))
    return pairs


def collect_documents(settings: KnowledgeSettings, data_dir: Path
                      ) -> tuple[list[Document], list[Poem], list[PoemGroup]]:
    docs: list[Document] = []
    for classical, bilingual, source in ((SUISHU_CLASSICAL, SUISHU_BILINGUAL, "suishu"),
                                         (ZZTJ_CLASSICAL, ZZTJ_BILINGUAL, "zztj")):
        docs.extend(history_documents(data_dir, classical, bilingual, source,
                                      settings.window_chars, settings.window_stride_chars))
    docs.extend(biography_documents(data_dir))
    poems, groups = build_groups(load_poems(data_dir, tuple(settings.extra_poem_authors)))
    docs.extend(poem_documents(poems))
    docs.extend(poem_group_documents(groups))
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise SuiqaError("knowledge base build produced duplicate passage ids (data files changed shape?)")
    return docs, poems, groups


def build_index(settings: KnowledgeSettings, data_dir: Path, target: Path, hashes: dict[str, str],
                progress: bool = False) -> None:
    """Build everything into ``target`` (atomically: a temporary sibling folder renamed at the end)."""
    import bm25s
    from tqdm import tqdm

    started = time.perf_counter()
    docs, poems, groups = collect_documents(settings, data_dir)
    tokenizer = WordTokenizer(jieba_extra_words())
    word_corpus, char_corpus = [], []
    memo: dict[str, tuple[list[str], list[str]]] = {}
    for doc in tqdm(docs, desc="kb: tokenising passages", unit="passage", disable=not progress):
        words: list[str] = []
        chars: list[str] = []
        for piece in doc.search_pieces:
            if piece not in memo:
                memo[piece] = (tokenizer.words(piece), char_tokens(piece))
            words.extend(memo[piece][0])
            chars.extend(memo[piece][1])
        word_corpus.append(words)
        char_corpus.append(chars)
    # the child granularity: one unit per history sentence (heading + classical + translation), owned by the
    # window that starts before it; a sentence hit returns that window (the one holding the fact)
    sent_corpus: list[list[str]] = []
    sent_owner: list[int] = []
    for position, doc in enumerate(docs):
        for unit in doc.sentence_units:
            sent_corpus.append(tokenizer.words(unit) + char_tokens(unit))
            sent_owner.append(position)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name, corpus in (("word", word_corpus), ("char", char_corpus), ("sent", sent_corpus)):
            retriever = bm25s.BM25()
            retriever.index(corpus, show_progress=False)
            retriever.save(str(tmp / name), show_progress=False)
        with (tmp / "passages.jsonl").open("w", encoding="utf-8") as fh:
            for doc in docs:
                fh.write(json.dumps({"id": doc.id, "source": doc.source, "title": doc.title, "text": doc.text},
                                    ensure_ascii=False) + "\n")
        (tmp / "sentence_owner.json").write_text(json.dumps(sent_owner))
        with (tmp / "poems.jsonl").open("w", encoding="utf-8") as fh:
            for poem in poems:
                fh.write(json.dumps(asdict(poem), ensure_ascii=False) + "\n")
        lexicon = Lexicon.learn(bilingual_pairs(data_dir), tokenizer)
        lexicon.save(tmp / "lexicon.json")
        with (tmp / "poem_groups.jsonl").open("w", encoding="utf-8") as fh:
            for group in groups:
                fh.write(json.dumps(asdict(group), ensure_ascii=False) + "\n")
        manifest = {"format": INDEX_FORMAT, "data_files": hashes, "passages": len(docs), "sentences": len(sent_owner),
                    "poems": len(poems), "poem_groups": len(groups), "lexicon": lexicon.meta,
                    "settings": {f: getattr(settings, f) for f in INDEX_SHAPING_FIELDS},
                    "build_seconds": round(time.perf_counter() - started, 2)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1, default=list))
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "manifest.json").is_file():  # somebody else's complete build is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def encoder_file(settings: KnowledgeSettings, cache_dir: Path) -> Path:
    return Path(settings.encoder_path) if settings.encoder_path else cache_dir / "encoder.npz"


def build_dense(settings: KnowledgeSettings, data_dir: Path, index_dir: Path, encoder_path: Path,
                retrain: bool = False, progress: bool = False) -> dict:
    """Train the dense encoder (if its file is missing, or ``retrain``) from the corpus, encode the index's
    passages with it into ``dense.npy`` and record the encoder's sha256 in the index manifest. Returns that
    record (with the training and encoding seconds)."""
    from react_tier.knowledge import dense

    started = time.perf_counter()
    docs, _, _ = collect_documents(settings, data_dir)
    manifest = json.loads((index_dir / "manifest.json").read_text())
    if len(docs) != manifest["passages"]:
        raise SuiqaError(f"index {index_dir} has {manifest['passages']} passages, the data gives "
                         f"{len(docs)}; "
                         "rebuild it with `suiqa kb build --force --dense`")
    if retrain or not encoder_path.is_file():
        config = dense.TrainConfig(dim=settings.encoder_dim, epochs=settings.encoder_epochs)
        pairs = dense.training_pairs(docs, bilingual_pairs(data_dir), seed=config.seed)
        dense.train(pairs, config, progress=progress).save(encoder_path)
    encoder = dense.Encoder.load(encoder_path)
    encoded_at = time.perf_counter()
    vectors = encoder.encode([" ".join(doc.search_pieces) for doc in docs])
    tmp = index_dir / f".tmp-{os.getpid()}-{dense.DENSE_VECTORS}"
    with tmp.open("wb") as fh:
        np.save(fh, vectors)
    tmp.replace(index_dir / dense.DENSE_VECTORS)
    record = {"encoder_sha256": encoder.sha256, "encoder": encoder.meta, "dim": int(vectors.shape[1]),
              "encode_seconds": round(time.perf_counter() - encoded_at, 2),
              "seconds": round(time.perf_counter() - started, 2)}
    manifest["dense"] = record
    tmp = index_dir / f".tmp-{os.getpid()}-manifest.json"
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1, default=list))
    tmp.replace(index_dir / "manifest.json")
    return record

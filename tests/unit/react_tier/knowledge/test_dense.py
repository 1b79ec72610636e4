"""The learned dense retriever (react_tier/knowledge/dense.py) on the real tiny index
(tests/unit/react_tier/knowledge/helpers.py): an encoder trained in the test (a second on the tiny corpus) by
the same code `suiqa kb build --dense` runs, the passage vectors it writes, the dense ranking against a numpy
oracle, its RRF fusion with BM25, and the errors for an index without vectors and a missing or stale encoder
file. Plus the unknown-poem answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from react_tier.knowledge import KnowledgeBase
from react_tier.knowledge.base import resolve_dirs
from react_tier.knowledge.dense import DENSE_VECTORS, Encoder, TrainConfig, train, training_pairs
from react_tier.knowledge.index import bilingual_pairs, build_dense, collect_documents, encoder_file
from suiqa.errors import SuiqaError
from tests.unit.react_tier.knowledge.helpers import prebuilt_copy, tiny_settings

PLAIN = {"decompose": False, "skip_overlapping": False, "use_poem_groups": False, "rerank": "off"}


@pytest.fixture(scope="module")
def dense_root(tmp_path_factory):
    """The tiny index plus its dense vectors, built by the real build step (20 epochs: ~1 s)."""
    root = prebuilt_copy(tmp_path_factory.mktemp("kb_dense"))
    settings = tiny_settings(root, encoder_epochs=20)
    kb = KnowledgeBase.load(settings)
    data_dir, cache_dir = resolve_dirs(settings)
    record = build_dense(settings, data_dir, kb.index_dir, encoder_file(settings, cache_dir))
    return root, record


def _kb(root, **overrides) -> KnowledgeBase:
    return KnowledgeBase.load(tiny_settings(root, encoder_epochs=20, **overrides))


def _pairs(root):
    settings = tiny_settings(root)
    docs, _, _ = collect_documents(settings, root / "data")
    return docs, training_pairs(docs, bilingual_pairs(root / "data"))


def test_training_is_seeded_deterministic_and_learns(dense_root):
    root, record = dense_root
    _, pairs = _pairs(root)
    assert {key.split(":")[0] for _, _, key in pairs} >= {"pair", "suishu", "zztj", "bio", "poem"}
    a, b = (train(pairs, TrainConfig(epochs=5)) for _ in range(2))
    assert a.vocab == b.vocab and np.array_equal(a.weights, b.weights)
    c = train(pairs, TrainConfig(epochs=5, seed=1))
    assert not np.array_equal(a.weights, c.weights)
    meta = record["encoder"]
    assert meta["steps"] == 20 and meta["last_loss"] < meta["first_loss"]


def test_manifest_records_the_encoder_and_vectors_are_the_encoded_passages(dense_root):
    root, record = dense_root
    kb = _kb(root, dense_weight=1.0)
    encoder = Encoder.load(root / "kb" / "encoder.npz")
    assert kb.manifest["dense"]["encoder_sha256"] == encoder.sha256 == record["encoder_sha256"]
    docs, _ = _pairs(root)
    vectors = np.load(kb.index_dir / DENSE_VECTORS)
    assert vectors.shape == (len(kb), 64)
    np.testing.assert_allclose(vectors, encoder.encode([" ".join(d.search_pieces) for d in docs]), atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("query", ["隋文帝在哪里去世", "韩擒虎死时多少岁", "开通济渠"])
def test_dense_ranking_is_cosine_order_and_fused_by_rrf(dense_root, query):
    root, _ = dense_root
    dense = _kb(root, dense_weight=0.8, **PLAIN)
    plain = _kb(root, **PLAIN)
    encoder, vectors = dense._dense
    words, _, extra_words, _ = dense.query_tokens(query)
    scores = vectors @ encoder.encode([" ".join(words + [f for f, _ in extra_words])])[0]
    ranking = dense._dense_ranking(words, extra_words)
    assert ranking == sorted(range(len(dense)), key=lambda p: (-scores[p], p))[:len(ranking)]
    assert len(ranking) == min(len(dense), dense.settings.fusion_depth)
    # fusion: the plain fused score + dense_weight / (rrf_k + rank), rank from 1
    expected = plain._fused(query)
    for rank, position in enumerate(ranking, start=1):
        expected[position] = expected.get(position, 0.0) + 0.8 / (dense.settings.rrf_k + rank)
    got = dense._fused(query)
    assert got.keys() == expected.keys()
    assert all(got[p] == pytest.approx(expected[p]) for p in got)
    assert [p.id for p in dense.search(query, 3)]


def test_missing_or_stale_encoder_and_index_without_vectors_are_refused(dense_root, tmp_path):
    root, _ = dense_root
    with pytest.raises(SuiqaError, match=r"missing; run `suiqa kb build --dense`"):
        _kb(root, dense_weight=1.0, encoder_path=tmp_path / "nowhere.npz")
    # another encoder (another seed) in the file the index was encoded with: stale
    _, pairs = _pairs(root)
    other = tmp_path / "other.npz"
    train(pairs, TrainConfig(epochs=1, seed=7)).save(other)
    with pytest.raises(SuiqaError, match=r"stale.*suiqa kb build --dense"):
        _kb(root, dense_weight=1.0, encoder_path=other)
    # a fresh index (no --dense) with dense_weight > 0
    fresh = prebuilt_copy(tmp_path / "fresh")
    with pytest.raises(SuiqaError, match=r"no dense vectors; run `suiqa kb build --dense`"):
        _kb(fresh, dense_weight=0.5)
    assert _kb(fresh).search("韩擒虎", 1)  # dense off: no encoder needed


def test_unknown_poem_gives_a_clear_answer(dense_root):
    from react_tier.knowledge.cli import app

    root, _ = dense_root
    assert _kb(root).lookup_poem(title="并无此诗") == []
    args = ["poem", "--title", "并无此诗", "--data-dir", str(root / "data"),
            "--cache-dir", str(root / "kb")]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, SuiqaError)
    assert "no poem in the knowledge base matches title '并无此诗'" in str(result.exception)
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []


def test_cli_build_dense_trains_encodes_and_enables_dense_search(tmp_path, monkeypatch):
    from react_tier.knowledge.cli import app

    monkeypatch.setenv("SUIQA_KB_WINDOW_CHARS", "40")  # the tiny index's windows (tiny_settings)
    monkeypatch.setenv("SUIQA_KB_WINDOW_STRIDE_CHARS", "20")

    root = prebuilt_copy(tmp_path / "cli")
    args = ["build", "--dense", "--data-dir", str(root / "data"), "--cache-dir", str(root / "kb")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "dense vectors ready: encoder" in result.output and (root / "kb" / "encoder.npz").is_file()
    kb = KnowledgeBase.load(tiny_settings(root, dense_weight=0.5))
    assert kb.manifest["dense"]["encoder_sha256"] == Encoder.load(root / "kb" / "encoder.npz").sha256
    assert kb.search("韩擒虎去世时多少岁", 3)

"""Instruction data from the poetry corpus: size, kinds, determinism, no conflicting answers, split, errors."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from finetune.data import KINDS, SUI, build_dataset, load_poems
from suiqa.errors import SuiqaError
from suiqa.paths import data_dir

POETRY = data_dir() / "poetry-qa"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ftdata")
    build_dataset(POETRY, out)
    return out


def _read(out: Path, split: str) -> list[dict]:
    return json.loads((out / f"{split}.alpaca.json").read_text(encoding="utf-8"))


def test_size_kinds_and_sui_weighting(dataset):
    stats = json.loads((dataset / "stats.json").read_text())["stats"]
    assert stats["pairs"] >= 10_000
    assert stats["files"] == len(list(POETRY.rglob("*.json")))
    assert set(stats["by_kind"]) == set(KINDS) and min(stats["by_kind"].values()) > 100
    poems, _ = load_poems(POETRY)
    sui_poem_share = sum(p.dynasty == SUI for p in poems) / len(poems)
    assert stats["sui_pairs"] / stats["pairs"] > 5 * sui_poem_share  # weighted towards Sui


def test_split_is_disjoint_and_formats_agree(dataset):
    train, val = _read(dataset, "train"), _read(dataset, "val")
    def key(r):
        return r["instruction"], r["input"]

    assert not {key(r) for r in train} & {key(r) for r in val}
    assert len({key(r) for r in train}) == len(train)  # deduplicated
    assert 0.01 < len(val) / (len(train) + len(val)) < 0.06
    chat = [
        json.loads(line) for line in (dataset / "val.chat.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(chat) == len(val)
    assert [m["role"] for m in chat[0]["messages"]] == ["system", "user", "assistant"]
    assert chat[0]["messages"][2]["content"] == val[0]["output"]


def test_answers_match_the_corpus(dataset):
    poems, _ = load_poems(POETRY)
    authors_by_title = defaultdict(set)
    for p in poems:
        authors_by_title[p.title].add(p.author)
    rows = _read(dataset, "train")
    checked = 0
    for r in rows:
        if r["instruction"].endswith("的作者是谁？"):
            title = r["instruction"][1 : -len("》的作者是谁？")]
            assert authors_by_title[title] == {
                r["output"].removeprefix(f"《{title}》的作者是").removesuffix("。")
            }
            checked += 1
    assert checked > 500
    sui_poem = next(p for p in poems if p.dynasty == SUI and p.author == "薛道衡" and p.title)
    assert any(r["output"] == sui_poem.content for r in rows + _read(dataset, "val"))


def test_deterministic(dataset, tmp_path):
    build_dataset(POETRY, tmp_path)
    for name in ("train.alpaca.json", "val.chat.jsonl"):
        assert (tmp_path / name).read_bytes() == (dataset / name).read_bytes()


def test_bad_source_is_one_clear_error(tmp_path):
    with pytest.raises(SuiqaError, match="not found"):
        build_dataset(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SuiqaError, match="not valid JSON"):
        build_dataset(tmp_path / "bad", tmp_path / "out")

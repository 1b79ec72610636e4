"""The benchmark prompt file is generated from the vendored Sui corpus, reproducibly."""

from __future__ import annotations

import pytest

from benchmarks.engine_bench import parse_engine_args
from benchmarks.openai_stream import load_prompts
from benchmarks.prompts import PROMPTS_FILE, build_questions, write_prompts
from suiqa.paths import data_dir


def test_questions_are_reproducible_and_about_the_sui(tmp_path):
    first = build_questions(data_dir(), count=200, seed=3)
    assert first == build_questions(data_dir(), count=200, seed=3)
    assert len(first) == len(set(first)) == 200
    assert sum("隋书" in q for q in first) >= 40          # ~1/4 from the Book of Sui
    assert all("隋" in q or "《" in q or "“" in q for q in first)
    path = write_prompts(data_dir(), tmp_path / "q.txt", count=50)
    assert len(load_prompts(str(path))) == 50


def test_committed_prompt_file_matches_the_generator():
    assert load_prompts(str(PROMPTS_FILE)) == build_questions(data_dir())


def test_missing_corpus_and_bad_engine_args(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Sui corpus"):
        build_questions(tmp_path)
    assert parse_engine_args(["max_num_seqs=512", "kv_cache_dtype=fp8", "enforce-eager=True"]) == {
        "max_num_seqs": 512, "kv_cache_dtype": "fp8", "enforce_eager": True}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_engine_args(["novalue"])

"""Behaviour pinned where mutation testing found it unpinned: the vLLM process environment of a serving profile,
alias expansion (longest key first, a matched span never matched again), and query cleaning edge cases."""

from __future__ import annotations

import pytest

from react_tier.knowledge.aliases import ALIASES, expand
from react_tier.knowledge.models import KnowledgeQueryError
from react_tier.knowledge.text import clean_query, split_sentences
from serving.config import load_profile

PRIVACY = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
OWN = (*PRIVACY, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_TARGET_DEVICE", "VLLM_CPU_KVCACHE_SPACE")


@pytest.fixture
def clean_env(monkeypatch):
    for name in OWN:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_cpu_profile_environment_is_offline_private_and_cpu(clean_env):
    env = load_profile("cpu-tiny").environment()
    assert {k: env[k] for k in OWN} == {**PRIVACY, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                                        "VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1"}


def test_hub_download_and_gpu_change_only_their_variables(clean_env):
    env = load_profile("gpu-internlm2-1_8b", allow_hub_download=True).environment()
    assert {k: env.get(k) for k in OWN} == {**PRIVACY, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
                                            "VLLM_TARGET_DEVICE": None, "VLLM_CPU_KVCACHE_SPACE": None}


def test_the_callers_environment_wins_over_the_defaults(clean_env):
    clean_env.setenv("DO_NOT_TRACK", "0")
    clean_env.setenv("VLLM_TARGET_DEVICE", "cuda")
    env = load_profile("cpu-tiny").environment()
    assert env["DO_NOT_TRACK"] == "0" and env["VLLM_TARGET_DEVICE"] == "cuda" and env["VLLM_NO_USAGE_STATS"] == "1"


@pytest.mark.parametrize("query, forms", [
    ("杀死", list(ALIASES["杀死"])),                       # 死 inside 杀死 is not matched again
    ("杀死、杀死、杀死", list(ALIASES["杀死"])),           # nor inside any later occurrence
    ("死于杀死", [*ALIASES["杀死"], *ALIASES["死"]]),      # a free 死 before the longer key still counts
    ("隋炀帝", list(dict.fromkeys(ALIASES["隋炀帝"]))),
    ("杨坚死后杨坚", list(dict.fromkeys([*ALIASES["杨坚"], *ALIASES["死"]]))),
    ("今天天气", list(ALIASES["天气"])), ("你好", []), ("abc", []),
])
def test_alias_expansion_is_exact(query, forms):
    assert expand(query) == forms


def test_the_longer_key_is_preferred_for_overlapping_keys():
    assert not set(ALIASES["死"]) <= set(ALIASES["杀死"])  # the cases above can tell them apart
    assert expand("文帝") == list(ALIASES["文帝"]) and expand("隋文帝") == list(ALIASES["隋文帝"])


def test_split_sentences_drops_blank_pieces():
    assert split_sentences("高祖崩。\n\n  \n时年六十四！") == ["高祖崩。", "时年六十四！"]


def test_bytes_queries_are_decoded_as_utf8_with_replacement():
    assert clean_query("隋炀帝".encode(), 100) == "隋炀帝"
    assert clean_query(b"\xff\xfe\xe9\x9a\x8b", 100) == "\ufffd\ufffd隋"


def test_a_non_text_query_names_its_type():
    with pytest.raises(KnowledgeQueryError, match="^query must be text, got int$"):
        clean_query(5, 100)

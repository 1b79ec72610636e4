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
    ("杀死、死、杀死", [*ALIASES["杀死"], *ALIASES["死"]]),  # every occurrence is visited, not just first and last
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


def test_the_vllm_command_line_with_every_option(clean_env, tmp_path):
    from serving.config import ServingProfile

    profile = ServingProfile(
        model=str(tmp_path / "m"), python="py", device="gpu", host="0.0.0.0", port=8100, dtype="bfloat16",
        max_model_len=2048, served_model_name=["a", "b"], max_num_seqs=8, max_num_batched_tokens=4096,
        kv_cache_dtype="fp8", quantization="awq", chat_template="t.jinja", tensor_parallel_size=2,
        enable_prefix_caching=False, enable_chunked_prefill=True, trust_remote_code=True, enable_lora=True,
        max_lora_rank=8, lora_modules={"sui": "/a"}, extra_args=["--seed", "1"])
    assert profile.command() == [  # GPU: `vllm serve MODEL` (so --api-server-count can apply)
        "py", "-m", "vllm.entrypoints.cli.main", "serve", str(tmp_path / "m"), "--host", "0.0.0.0",
        "--port", "8100", "--dtype", "bfloat16", "--max-model-len", "2048", "--served-model-name", "a", "b",
        "--max-num-seqs", "8", "--max-num-batched-tokens", "4096", "--kv-cache-dtype", "fp8",
        "--quantization", "awq", "--chat-template", "t.jinja", "--shutdown-timeout", "10",
        "--gpu-memory-utilization", "0.85", "--tensor-parallel-size", "2", "--no-enable-prefix-caching",
        "--enable-chunked-prefill", "--trust-remote-code", "--enable-request-id-headers", "--enable-lora",
        "--max-lora-rank", "8", "--lora-modules", "sui=/a", "--seed", "1"]
    single = profile.model_copy(update={"tensor_parallel_size": 1, "lora_modules": {}})
    assert "--tensor-parallel-size" not in single.command() and "--lora-modules" not in single.command()
    assert single.command()[-5:] == ["--enable-lora", "--max-lora-rank", "8", "--seed", "1"]
    bare = ServingProfile(model="m", python="py")
    assert bare.command() == ["py", "-m", "vllm.entrypoints.openai.api_server", "--model", "m", "--host",
                              "127.0.0.1", "--port", "8000", "--dtype", "auto", "--max-model-len", "4096",
                              "--shutdown-timeout", "10", "--enable-request-id-headers"]


def test_a_profile_without_a_role_reads_the_domain_prefix(clean_env, tmp_path):
    (tmp_path / "p.yaml").write_text("model: m\nport: 8200\n")
    clean_env.setenv("SUIQA_DOMAIN_PORT", "8201")
    clean_env.setenv("SUIQA_AGENT_PORT", "8202")
    assert load_profile(tmp_path / "p.yaml").port == 8201
    assert load_profile(tmp_path / "p.yaml", role="agent").port == 8202


def test_word_tokenizer_exact_words():
    from react_tier.knowledge.text import QUERY_STOPWORDS, WordTokenizer

    plain, extra = WordTokenizer(), WordTokenizer(("杨师道",))
    # no HMM: unknown names stay single characters instead of invented words (杨师, 唐尚)
    assert plain.words("杨师道入唐尚桂阳公主") == ["杨", "师", "道", "入", "唐", "尚", "桂阳", "公主"]
    assert plain.query_words("杨师道入唐尚桂阳公主") == ["杨", "师", "道", "入", "唐", "尚", "桂阳", "公主"]
    assert extra.words("杨师道入唐") == ["师道", "杨师道", "入", "唐"]
    assert plain._sub_words("中华人民共和国") == ["中华", "华人", "人民", "共和", "共和国"]
    assert plain._sub_words("大运河") == ["大运", "运河"] and plain._sub_words("运河") == []
    assert plain._sub_words("一个人") == ["一个", "个人"] and plain._sub_words("一个人", QUERY_STOPWORDS) == ["个人"]
    # a query word's sub-words leave out the query stopwords (一个, 一年), the passage words keep them
    assert plain.query_words("隋朝的第一个皇帝") == ["第一", "第一个", "皇帝"]
    assert plain.query_words("开皇十一年") == ["开皇", "十一", "十一年"]
    assert plain.words("开皇十一年") == ["开皇", "十一", "一年", "十一年"]


def test_query_length_boundary_and_messages():
    assert clean_query("隋" * 10, 10) == "隋" * 10
    for raw, message in (("隋" * 11, "query too long: 11 characters (limit 10)"),
                         ("  \x00 ", "empty query: give a question or keywords"),
                         ("。，", "query has no searchable characters (Chinese, letters or digits)")):
        with pytest.raises(KnowledgeQueryError) as info:
            clean_query(raw, 10)
        assert str(info.value) == message

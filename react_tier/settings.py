"""Typed configuration of the ReAct agent (env prefix ``SUIQA_REACT_``, nested fields with ``__``).

Example: ``SUIQA_REACT_AGENT_LLM__BASE_URL=https://dashscope.aliyuncs.com/compatible-mode/v1``,
``SUIQA_REACT_MAX_STEPS=3``, or a YAML file passed to :meth:`AgentSettings.load`. The knowledge base nested here
keeps its own prefix (``SUIQA_KB_``); see suiqa/settings.py for the precedence.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from react_tier.knowledge.settings import KnowledgeSettings
from react_tier.request import RequestLimits
from suiqa.settings import TierSettings

DEFAULT_TOOLS = ["ask_sui_expert", "search_knowledge", "lookup_poem"]


class LLMEndpointSettings(BaseModel):
    """One OpenAI-compatible chat endpoint (vLLM, or a hosted Qwen)."""

    model_config = {"extra": "forbid"}

    base_url: str = Field(..., description="OpenAI-compatible base URL; a bare http://host:port gets '/v1'.")
    model: str = Field(..., description="Model name sent in each request (vLLM's --served-model-name).")
    adapter: str | None = Field(
        None, description="A LoRA adapter loaded on this tier (`suiqa lora load NAME FOLDER`, docs/lora.md): "
        "calls ask for it instead of `model`, and the tier is ready only while the server lists it.")
    api_key: SecretStr = Field(SecretStr("EMPTY"), description="Bearer token ('EMPTY' for a local vLLM).")
    timeout_s: float = Field(30.0, gt=0, description="Per-call read timeout (also capped by the run deadline).")
    connect_timeout_s: float = Field(1.0, gt=0, description="TCP connect timeout per call (a dead upstream is "
                                     "refused or unanswered: with the retries it is known within ~2 s).")
    stream_idle_timeout_s: float = Field(10.0, gt=0, description="Streamed calls: longest wait for the next chunk "
                                         "(a hung upstream is detected by this, not by timeout_s).")
    max_retries: int = Field(2, ge=0, le=10, description="Retries on connection errors and 5xx only (jittered).")
    retry_backoff_s: float = Field(0.2, ge=0, description="Base of the jittered exponential retry backoff.")
    breaker_failures: int = Field(3, ge=1, description="Consecutive upstream faults that open the circuit breaker.")
    breaker_reset_s: float = Field(5.0, gt=0, description="Open breaker: fail fast this long, then probe once.")
    max_tokens: int = Field(512, gt=0, description="Completion token cap per call.")
    context_tokens: int | None = Field(
        None, gt=0, description="The model's context window in tokens (vLLM's max_model_len; `suiqa up` sets "
        "it from the serving profile). Set, start-up checks that the longest request the limits allow fits "
        "it (react_tier/budget.py); None: not checked.")
    tokens_per_char: float = Field(
        1.0, gt=0, le=8, description="Tokens per character of Chinese text the budget assumes for this model "
        "(an upper estimate: the tiny BPE 0.86-0.97 on Sui text; Qwen2.5 and InternLM2 about 0.7).")
    temperature: float = Field(0.3, ge=0, le=2, description="Sampling temperature.")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Extra request fields (e.g. top_k).")
    continuous_usage_stats: bool = Field(
        True, description="Ask for token counts on every streamed chunk (vLLM's stream_options."
                          "continuous_usage_stats), so the answer's max_tokens is counted in the model's tokens; "
                          "off for endpoints that refuse it (then each chunk counts as one token).")

    replicas: list[str] = Field(
        default_factory=list, description="Base URLs of this tier's vLLM replicas (each like base_url); "
        "calls are routed over them (react_tier/routing.py). Empty: base_url alone, as one endpoint.")
    resolve_dns: bool = Field(
        False, description="base_url's host is a headless Service: each of its DNS addresses is one replica "
        "(base_url's port and path), looked up again every dns_refresh_s.")
    dns_refresh_s: float = Field(10.0, gt=0, description="How often the replicas' DNS name is looked up.")
    routing: Literal["run_affine", "round_robin"] = Field(
        "run_affine", description="run_affine: every call of one ReAct run goes to the same replica (its "
        "prefix cache), by consistent hashing with bounded loads; round_robin: call by call.")
    balance_factor: float = Field(
        1.25, ge=1.0, le=10.0, description="run_affine: no replica holds more than this times the mean "
        "number of runs in flight (consistent hashing with bounded loads).")

    @property
    def model_name(self) -> str:
        """What each chat call asks for: the LoRA adapter when one is set, else the model."""
        return self.adapter or self.model

    @field_validator("base_url")
    @classmethod
    def _add_v1(cls, value: str) -> str:
        return _endpoint_url(value)

    @field_validator("replicas")
    @classmethod
    def _replica_urls(cls, value: list[str]) -> list[str]:
        urls = [_endpoint_url(url) for url in value]
        if len(set(urls)) != len(urls):
            raise ValueError(f"replicas lists a URL twice: {urls}")
        return urls

    @model_validator(mode="after")
    def _consistent(self) -> LLMEndpointSettings:
        if self.adapter is not None and self.adapter == self.model:
            raise ValueError(f"adapter {self.adapter!r} is the base model's name; name the loaded adapter")
        if self.replicas and self.resolve_dns:
            raise ValueError("replicas and resolve_dns exclude each other: list the replicas, or let "
                             "base_url's DNS name list them")
        return self


def _endpoint_url(value: str) -> str:
    """An http(s) base URL, '/v1' added to a bare host:port."""
    value = value.rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url must be an http(s) URL, got {value!r}")
    return value + "/v1" if parts.path in ("", "/") else value


class DomainLLMSettings(LLMEndpointSettings):
    """The domain tier with the local defaults, so one env var (e.g. ``..._DOMAIN_LLM__MODEL``) suffices."""

    base_url: str = Field("http://127.0.0.1:8000/v1", description="Domain model endpoint (suiqa serve domain).")
    model: str = Field("internlm2-chat-sui", description="Domain model name.")
    max_tokens: int = Field(256, gt=0, description="Completion token cap per call (the draft is short).")


class AgentLLMSettings(LLMEndpointSettings):
    """The agent tier with the local defaults."""

    base_url: str = Field("http://127.0.0.1:8001/v1", description="Agent model endpoint (suiqa serve agent).")
    model: str = Field("qwen-agent", description="Agent model name.")


class ExtraToolSpec(BaseModel):
    """An operator-added tool: a :class:`react_tier.tools.Tool` subclass imported by path."""

    model_config = {"extra": "forbid"}

    path: str = Field(..., pattern=r"^[\w.]+:\w+$", description="'package.module:ClassName'.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the constructor.")


class AgentSettings(TierSettings):
    """The ReAct knowledge-fill agent: endpoints, tools, limits."""

    model_config = SettingsConfigDict(env_prefix="SUIQA_REACT_", extra="forbid", env_nested_delimiter="__")

    domain_llm: DomainLLMSettings = Field(
        default_factory=DomainLLMSettings,
        description="Domain model (fine-tuned InternLM2): the draft and the ask_sui_expert tool.")
    agent_llm: AgentLLMSettings = Field(default_factory=AgentLLMSettings,
                                        description="Agent model (Qwen) that runs the ReAct loop.")
    max_steps: int = Field(5, ge=1, le=20, description="Agent LLM calls in the loop (parse errors count).")
    max_parse_retries: int = Field(2, ge=0, description="Consecutive unparsable outputs tolerated before giving up.")
    deadline_s: float = Field(60.0, gt=0, description="Total wall-clock budget of one run.")
    final_answer_reserve_s: float = Field(
        8.0, ge=0, description="Part of the deadline kept for the forced best-effort Final Answer call.")
    max_observation_chars: int = Field(1200, ge=50, description="Observations are cut to this length.")
    limits: RequestLimits = Field(default_factory=RequestLimits,
                                  description="Input limits, checked by the agent and by the ingress.")
    draft_first: bool = Field(True, description="Ask the domain model once before the loop; its draft is input.")
    always_search_first: bool = Field(
        False, description="Run search_knowledge(question) as a forced first step before the model's first turn.")
    tools: list[str] = Field(default_factory=lambda: list(DEFAULT_TOOLS),
                             description="Built-in tools offered to the agent, by name.")
    extra_tools: list[ExtraToolSpec] = Field(default_factory=list,
                                             description="Operator tools ('module:Class' + kwargs).")
    tool_timeout_s: float = Field(20.0, gt=0, description="Per tool call; a timeout becomes an Observation.")
    search_k: int = Field(4, ge=1, le=20, description="Default passages per search_knowledge call.")
    knowledge: KnowledgeSettings = Field(
        default_factory=KnowledgeSettings,
        description="The knowledge base (a nested tier: its env vars are SUIQA_KB_*).")

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"tools lists a name twice: {value}")
        return value

    @model_validator(mode="after")
    def _knowledge_takes_the_longest_question(self) -> AgentSettings:
        """The knowledge base's query limit follows the question limit: the forced first search (and a
        model that searches with the whole question) sends the question as the query. It was 1,000 against
        a question limit of 2,000, so the forced search failed for questions of 1,001-2,000 characters
        (issue #25). Set explicitly, it may not be lower."""
        question, query = self.limits.max_question_chars, self.knowledge.max_query_chars
        if "max_query_chars" not in self.knowledge.model_fields_set:
            if query < question:
                self.knowledge = self.knowledge.model_copy(update={"max_query_chars": question})
        elif query < question:
            raise ValueError(f"knowledge.max_query_chars ({query}) is below limits.max_question_chars "
                             f"({question}): the forced first search sends the whole question; raise it, or "
                             "leave it unset to follow the question limit")
        return self

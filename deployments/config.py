"""Typed configuration of the Ray Serve tier (``SUIQA_API_*`` env vars, YAML, CLI overrides).

The same model produces the ``serve deploy`` YAML (:func:`deployments.serve_config.serve_config`), so a
Kubernetes RayService can carry exactly these settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from deployments.canary import CanarySettings
from deployments.quality_ladder import QualityLadderSettings
from react_tier import AgentSettings
from react_tier.answer_cache import AnswerCacheSettings
from suiqa.settings import TierSettings

PROFILES_DIR = Path(__file__).with_name("profiles")


class AutoscalingSettings(BaseModel):
    """Ray Serve ``autoscaling_config`` of the agent deployment."""

    min_replicas: int = Field(1, ge=0)
    initial_replicas: int | None = Field(None, ge=0)
    max_replicas: int = Field(4, ge=1)
    target_ongoing_requests: float = Field(8, gt=0, description="Per-replica in-flight requests to aim for.")
    upscale_delay_s: float = Field(10, ge=0)
    downscale_delay_s: float = Field(120, ge=0)
    metrics_interval_s: float = Field(2, gt=0)
    look_back_period_s: float = Field(10, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingSettings:
        if self.max_replicas < self.min_replicas:
            raise ValueError("autoscaling.max_replicas must be >= min_replicas")
        return self

    def to_ray(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class AgentDeploymentSettings(BaseModel):
    """How Ray Serve runs the replicas (each: the HTTP ingress + one ReAct agent)."""

    autoscaling: AutoscalingSettings | None = Field(
        default_factory=AutoscalingSettings, description="None = fixed num_replicas.")
    num_replicas: int = Field(1, ge=1, description="Used when autoscaling is None.")
    max_ongoing_requests: int | None = Field(
        None, ge=1, description="Ray's cap on requests inside a replica (refused ones included). Unset: the "
        "replica's admission capacity, admission.max_in_flight + admission.max_queue, so that Ray's proxy refuses "
        "what no replica can take itself (429 + Retry-After, without reaching a replica).")
    max_queued_requests: int | None = Field(
        None, ge=-1, description="Requests Ray's proxy holds while it places them or every replica is at "
        "max_ongoing_requests; beyond it the proxy answers 429 + Retry-After itself (-1 = unbounded). Unset: the "
        "runs the starting replicas take at once (replicas at start x admission.max_in_flight). Ray counts a "
        "request as queued until it is placed, so 1 refused 16% of a load below capacity (CPU soak, 6 clients "
        "against 12 places), and 32 (one replica's runs, 4 replicas) 110 of a 128-client burst on the H100.")
    backpressure_retry_after_s: int = Field(2, ge=1, description="Retry-After of that 429 (Ray's "
                                            "backpressure_config; without it Ray answers 503 and no Retry-After).")
    graceful_shutdown_wait_loop_s: float = Field(2, ge=0)
    graceful_shutdown_timeout_s: float = Field(60, ge=0, description="Lets in-flight agent runs finish.")
    health_check_period_s: float = Field(10, gt=0)
    health_check_timeout_s: float = Field(30, gt=0)
    num_cpus: float = Field(0.5, ge=0, description="ray_actor_options.num_cpus per replica.")

    def replicas_at_start(self) -> int:
        """Replicas Ray starts the deployment with (autoscaling: initial_replicas, else min_replicas, at least 1)."""
        if self.autoscaling is None:
            return self.num_replicas
        start = self.autoscaling.initial_replicas
        return max(1, self.autoscaling.min_replicas if start is None else start)

    @model_validator(mode="after")
    def _rays_queue_bound(self) -> AgentDeploymentSettings:
        if self.max_queued_requests == 0:  # Ray: -1 or a positive integer
            raise ValueError("agent_deployment.max_queued_requests must be -1 (unbounded) or at least 1")
        return self

    def deployment_options(self, admission: AdmissionSettings, extra_ongoing: int = 0) -> dict[str, Any]:
        """Ray Serve deployment options; unset, ``max_ongoing_requests`` is the replica's admission capacity (runs
        + queue + ``extra_ongoing``: the quality ladder's extractive lane) and ``max_queued_requests`` the runs the
        starting replicas take at once: a burst the deployment can start is placed, not refused in the proxy (on
        the H100, 4 replicas of 32 runs behind a proxy queue of 32 refused 110 of 256 requests sent by 128 clients
        at once, none of a ramped 128: benchmarks/results/gpu/2026-12-07/report.md)."""
        queued = self.max_queued_requests
        if queued is None:
            queued = self.replicas_at_start() * admission.max_in_flight
        capacity = admission.max_in_flight + admission.max_queue + extra_ongoing
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests or capacity,
            "max_queued_requests": queued,
            # Ray 2.60: the proxy's own overflow answer (deployments/middleware.py gives it OpenAI's error format)
            "backpressure_config": {"status_code": 429, "retry_after_s": self.backpressure_retry_after_s},
            "graceful_shutdown_wait_loop_s": self.graceful_shutdown_wait_loop_s,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
            "health_check_period_s": self.health_check_period_s,
            "health_check_timeout_s": self.health_check_timeout_s,
            "ray_actor_options": {"num_cpus": self.num_cpus},
            # Serve's own lines as JSON (with its request id); its access log is off: the ingress writes one JSON
            # `request` line per response itself, without the /health, /ready and /metrics probes
            "logging_config": {"encoding": "JSON", "enable_access_log": False},
        }
        if self.autoscaling is not None:
            options["autoscaling_config"] = self.autoscaling.to_ray()
        else:
            options["num_replicas"] = self.num_replicas
        return options


class AdmissionSettings(BaseModel):
    """Admission control at the ingress, per replica, before any work (deployments/admission.py).

    ``max_in_flight`` agent runs at once, ``max_queue`` more wait up to ``queue_timeout_s``; beyond that a request
    is refused with 429 + Retry-After at once. ``max_in_flight + max_queue`` is also the deployment's
    ``max_ongoing_requests`` (unless set): what is beyond every replica's capacity Ray's proxy refuses itself.
    """

    max_in_flight: int = Field(4, ge=1, description="Agent runs at once per replica (sized from measurement).")
    max_queue: int = Field(8, ge=0, description="Requests waiting for a run slot per replica; more → 429.")
    queue_timeout_s: float = Field(10, gt=0, description="Longest wait for a slot before a 429; a request expected "
                                   "to wait longer (from the replica's mean run time) gets the 429 at once.")
    retry_after_s: int = Field(2, ge=1, description="Retry-After of a 429/503 from the ingress.")
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="Larger request bodies get a 413 unread.")
    per_key_concurrency: int = Field(8, ge=1, description="Requests in flight per API key per replica; more → 429.")
    per_key_rpm: float = Field(120, gt=0, description="Requests per minute per API key per replica (token bucket).")
    per_key_burst: int = Field(20, ge=1, description="Token-bucket size: requests a key may send at once.")


class TracingSettings(BaseModel):
    """OpenTelemetry traces of each request (deployments/tracing.py, docs/tracing.md): off by default."""

    enabled: bool = Field(False, description="One span tree per request: ingress, agent run, steps, tools, LLM "
                          "calls (with `traceparent` sent to vLLM), exported over OTLP/HTTP.")
    otlp_endpoint: str = Field("http://127.0.0.1:4318/v1/traces", description="OTLP/HTTP traces URL (a "
                               "collector, Jaeger, Tempo ...).")
    service_name: str = Field("sui-pipeline", description="The spans' service.name.")
    sample_ratio: float = Field(1.0, ge=0, le=1, description="Share of new traces kept (a client's sampled "
                                "`traceparent` is followed).")
    export_timeout_s: float = Field(5, gt=0, description="Per OTLP export; a down collector drops spans, "
                                    "never blocks requests.")


class ApiSettings(TierSettings):
    """The pipeline API: an autoscaled Serve deployment, OpenAI-compatible ingress + ReAct agent per replica."""

    model_config = SettingsConfigDict(env_prefix="SUIQA_API_", env_nested_delimiter="__", extra="forbid")

    app_name: str = Field("sui-react", description="Ray Serve application name.")
    served_model_name: str = Field("sui-react", description="The `model` clients send.")
    host: str = Field("127.0.0.1", description="Serve HTTP proxy host (0.0.0.0 in containers).")
    port: int = Field(8080, ge=1, le=65535, description="Serve HTTP proxy port.")
    route_prefix: str = "/"
    request_timeout_s: float = Field(120, gt=0, description="Whole-request limit at the ingress (-> 504).")
    profile: str | None = Field(None, description="Stack profile name, shown in /v1/models (set by `suiqa up`).")
    tiny_models: bool = Field(False, description="The stack runs the random tiny models (said in /v1/models).")
    metrics_port: int = Field(8091, ge=0, le=65535, description="Per-node endpoint of the pipeline's sui_* metrics "
                              "(one replica per node serves them all; 0 = off). Host: `host`.")
    agent_deployment: AgentDeploymentSettings = Field(default_factory=AgentDeploymentSettings)
    api_keys: SecretStr | None = Field(
        None, description="Bearer API keys, 'id:key' (or a bare key) separated by commas or newlines. Never logged.")
    api_keys_file: Path | None = Field(None, description="A secret file with more keys, one 'id:key' a line.")
    require_api_keys: bool = Field(True, description="Refuse to start without keys (false: an open demo API).")
    admission: AdmissionSettings = Field(default_factory=AdmissionSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    answer_cache: AnswerCacheSettings = Field(default_factory=AnswerCacheSettings,
                                              description="The evidence-keyed answer cache, per replica.")
    quality_ladder: QualityLadderSettings = Field(default_factory=QualityLadderSettings,
                                                  description="Step answers down under load before a 429.")
    canary: CanarySettings = Field(default_factory=CanarySettings,
                                   description="The answer-quality canary lane of each replica.")
    agent: AgentSettings = Field(default_factory=AgentSettings,
                                 description="The react_tier configuration (a nested tier: SUIQA_REACT_* env vars; "
                                             "its input limits are the API's limits).")

    @model_validator(mode="after")
    def _front_door_paths(self) -> ApiSettings:
        if self.route_prefix != "/":  # the front door answers /health at the root (deployments/middleware.py)
            raise ValueError(f"route_prefix must be '/' (got {self.route_prefix!r})")
        return self

    def deployment_options(self) -> dict[str, Any]:
        """The agent deployment's Ray Serve options, sized from the admission settings unless set."""
        ladder = self.quality_ladder
        return self.agent_deployment.deployment_options(
            self.admission, ladder.extractive_max_in_flight if ladder.enabled else 0)

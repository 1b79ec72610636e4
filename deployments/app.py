"""The Ray Serve application: one autoscaled deployment whose replicas each run the OpenAI-compatible ingress
(FastAPI via ``serve.ingress``) and a react_tier ``ReActAgent``. Build it with :func:`build_app`; ``serve deploy``
uses :func:`app_builder`.

Why one deployment and not ingress -> handle -> agent: an agent run is I/O-bound (it waits on the LLM tiers), so
the replica that parses HTTP can run it too; a second hop cost ~+20 ms p50 per request on a 2-core machine
(benchmarks/results/overhead) and a Serve round trip per streamed event. Autoscaling on ongoing requests scales
HTTP handling and agent runs together.

In front of the replicas, each node's Serve proxy runs the front door (deployments/middleware.py: /health, Ray's
own refusals in OpenAI's format); the deployment's ``max_ongoing_requests`` is the replica's admission capacity, so
the proxy refuses what no replica can hold (``ApiSettings.deployment_options``).

Observability per replica: JSON log lines (ingress and agent, each with the request id) appended to
``$SUIQA_HOME/logs/pipeline.jsonl``; the ``sui_*`` metrics in prometheus-client's multiprocess directory, one
replica per node serving them on ``metrics_port`` (deployments/node_exporter.py says why).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve
from ray.serve import Application

from deployments.config import ApiSettings

PIPELINE_LOGGERS = ("deployments", "react_tier")  # the ingress and the agent (Serve's own logger is separate)


@serve.deployment(name="SuiReAct")
@serve.ingress()  # the app is built per replica, around this replica's handler (__serve_build_asgi_app__)
class SuiReActDeployment:
    def __init__(self, api_settings: dict[str, Any]):
        from deployments import node_exporter
        from deployments.agent_metrics import PrometheusAgentHooks
        from deployments.auth import KeyRing, require_keys
        from deployments.metrics import PipelineMetrics
        from deployments.serving_chat import OpenAIServingChat
        from react_tier import ReActAgent
        from suiqa.logs import configure_json_logging
        from suiqa.paths import logs_dir, run_dir

        settings = ApiSettings.model_validate(api_settings)
        self.keys = require_keys(settings, KeyRing.from_settings(settings))
        configure_json_logging(PIPELINE_LOGGERS, path=logs_dir() / "pipeline.jsonl")
        # the stack sets the directory (and wipes it on `suiqa up`); elsewhere a default under $SUIQA_HOME
        node_exporter.use_multiprocess(node_exporter.multiprocess_dir() or run_dir() / "pipeline-metrics")
        self.metrics = PipelineMetrics()
        self.exporter = node_exporter.NodeMetricsExporter(settings.host, settings.metrics_port).start()
        hooks, self.tracer_provider = [PrometheusAgentHooks(self.metrics)], None
        if settings.tracing.enabled:
            from deployments.tracing import OtelAgentHooks, tracer_provider

            self.tracer_provider = tracer_provider(settings.tracing)
            hooks.append(OtelAgentHooks(self.tracer_provider.get_tracer("sui.pipeline")))
        self.agent = ReActAgent.from_settings(settings.agent, hooks=hooks)
        from deployments.answer_cache import caching_agent
        from deployments.quality_ladder import LadderAgent

        self.cached = caching_agent(self.agent, settings.answer_cache, self.metrics)
        front = LadderAgent(self.cached, settings.quality_ladder, settings.agent.max_steps, self.metrics)
        self.chat = OpenAIServingChat(settings, front, self.metrics)
        from deployments.canary import CanaryLane

        self.canary = CanaryLane(self.cached, settings.canary, self.metrics).start()
        # Load the knowledge base now (off the event loop) rather than on this replica's first request.
        self._warm_up = asyncio.get_running_loop().create_task(self.agent.load_knowledge())

    def __serve_build_asgi_app__(self):
        from deployments.api_router import create_app

        tracer = self.tracer_provider.get_tracer("sui.pipeline") if self.tracer_provider else None
        self._asgi = create_app(self.chat, echo_request_id=False, keys=self.keys,  # the proxy echoes X-Request-Id
                                tracer=tracer)
        return self._asgi

    async def check_health(self) -> None:
        """Serve's replica health check: the replica's event loop answers (upstream health is /ready's job)."""

    async def __del__(self):
        gate = getattr(getattr(getattr(self, "_asgi", None), "state", None), "gate", None)
        if gate is not None:  # Serve has waited for in-flight requests (graceful_shutdown_timeout_s)
            gate.drain()
        exporter = getattr(self, "exporter", None)
        if exporter is not None:
            exporter.close()
        provider = getattr(self, "tracer_provider", None)
        if provider is not None:
            provider.shutdown()  # exports the spans still batched
        canary = getattr(self, "canary", None)
        if canary is not None:
            await canary.close()
        cached = getattr(self, "cached", None)
        if cached is not None:
            await cached.upstream_models.close()
        agent = getattr(self, "agent", None)  # absent when the constructor failed
        if agent is not None:
            await agent.aclose()


def build_app(settings: ApiSettings) -> Application:
    from deployments.auth import KeyRing, require_keys
    from react_tier.budget import check_prompt_budget

    require_keys(settings, KeyRing.from_settings(settings))  # fail here, not in every replica's constructor
    check_prompt_budget(settings.agent)  # limits a model's context cannot hold: the same
    options = settings.deployment_options()
    # python mode keeps secrets as SecretStr (pickled by Ray) instead of masking them
    return SuiReActDeployment.options(**options).bind(settings.model_dump())


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for ``serve run deployments.app:app_builder`` / a ``serve deploy`` YAML. ``args`` are the YAML
    layer of the settings: the environment (SUIQA_API_*, SUIQA_REACT_*, SUIQA_KB_*) overrides them."""
    return build_app(ApiSettings.load(base=args))

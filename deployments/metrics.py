"""Prometheus metrics of the pipeline, recorded with ``ray.util.metrics`` so every replica's series reach Ray's
metrics export port (one scrape target per node; Ray exports them with its ``ray_`` namespace in front, e.g.
``ray_sui_request_e2e_seconds_bucket``).

The agent side plugs in as react_tier hooks (:class:`PrometheusAgentHooks`): no metrics code in the ReAct loop.
"""

from __future__ import annotations

from ray.util.metrics import Counter, Histogram

from react_tier import AgentHooks

LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
STEP_BUCKETS = [1, 2, 3, 4, 5, 6, 8, 10]  # Ray wants positive boundaries; le=1 holds 0 and 1


class ApiMetrics:
    """Ingress-side series: per-request latency, time to first token, outcome."""

    def __init__(self) -> None:
        self.e2e = Histogram("sui_request_e2e_seconds", "End-to-end latency of a pipeline request.",
                             boundaries=LATENCY_BUCKETS, tag_keys=("stream",))
        self.ttft = Histogram("sui_request_ttft_seconds", "Time to the first answer token (stream) or to the "
                              "whole answer (non-stream).", boundaries=LATENCY_BUCKETS, tag_keys=("stream",))
        self.requests = Counter("sui_requests_total", "Pipeline requests by HTTP status.", tag_keys=("status",))


class PrometheusAgentHooks(AgentHooks):
    """Agent-side series, fed by the react_tier hook calls."""

    def __init__(self) -> None:
        self.steps = Histogram("sui_agent_steps", "ReAct steps per request.", boundaries=STEP_BUCKETS)
        self.tool_latency = Histogram("sui_tool_latency_seconds", "Tool call latency by tool.",
                                      boundaries=LATENCY_BUCKETS, tag_keys=("tool", "outcome"))
        self.llm_latency = Histogram("sui_llm_call_seconds", "Upstream LLM call latency by tier.",
                                     boundaries=LATENCY_BUCKETS, tag_keys=("tier",))
        self.parse_errors = Counter("sui_parse_errors_total", "ReAct outputs that could not be parsed.")
        self.finish = Counter("sui_finish_reasons_total", "Agent runs by finish_reason.", tag_keys=("finish_reason",))
        self.upstream_errors = Counter("sui_upstream_errors_total", "Failed upstream LLM calls by tier.",
                                       tag_keys=("tier",))
        self.tokens = Counter("sui_upstream_tokens_total", "Tokens used upstream by tier and kind.",
                              tag_keys=("tier", "kind"))

    async def on_llm_call(self, tier, latency_s, usage, error) -> None:
        self.llm_latency.observe(latency_s, tags={"tier": tier})
        if error:
            self.upstream_errors.inc(tags={"tier": tier})
        for kind in ("prompt_tokens", "completion_tokens"):
            if usage and usage.get(kind):
                self.tokens.inc(usage[kind], tags={"tier": tier, "kind": kind.removesuffix("_tokens")})

    async def on_tool_end(self, tool, latency_s, ok) -> None:
        self.tool_latency.observe(latency_s, tags={"tool": tool, "outcome": "ok" if ok else "error"})

    async def on_parse_error(self, error, raw_output) -> None:
        self.parse_errors.inc()

    async def on_run_end(self, result, latency_s) -> None:
        self.steps.observe(len(result.steps))
        self.finish.inc(tags={"finish_reason": result.finish_reason})

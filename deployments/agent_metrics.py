"""react_tier's hooks as ``sui_*`` series: LLM calls (latency, errors, tokens by tier), tool calls (latency by
outcome; the knowledge-base tools' search latency), parse errors, and each run's steps, finish reason and grounding
score. The ReAct loop itself has no metrics code (react_tier/hooks.py is its seam)."""

from __future__ import annotations

from deployments.metrics import PipelineMetrics
from react_tier import AgentHooks

KB_TOOLS = frozenset({"search_knowledge", "lookup_poem"})


class PrometheusAgentHooks(AgentHooks):
    def __init__(self, metrics: PipelineMetrics) -> None:
        self.m = metrics

    async def on_llm_call(self, tier, latency_s, usage, error) -> None:
        self.m.llm_latency.labels(tier).observe(latency_s)
        if error:
            self.m.upstream_errors.labels(tier).inc()
        for kind in ("prompt_tokens", "completion_tokens"):
            if usage and usage.get(kind):
                self.m.tokens.labels(tier, kind.removesuffix("_tokens")).inc(usage[kind])

    async def on_tool_end(self, tool, latency_s, ok) -> None:
        self.m.tool_latency.labels(tool, "ok" if ok else "error").observe(latency_s)
        if ok and tool in KB_TOOLS:
            self.m.kb_search.observe(latency_s)

    async def on_parse_error(self, error, raw_output) -> None:
        self.m.parse_errors.inc()

    async def on_run_end(self, result, latency_s) -> None:
        self.m.steps.observe(len(result.steps))
        reason = "length" if result.truncated and result.finish_reason == "stop" else result.finish_reason
        self.m.finish_reasons.labels(reason).inc()
        if result.grounding is not None:
            self.m.observe_grounding(result.grounding.score)

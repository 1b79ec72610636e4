"""The pipeline's Prometheus series (``sui_*``): their names, help, labels and buckets, and nothing else.

Why prometheus-client and not ``ray.util.metrics`` (used before): Ray 2.60's metrics agent receives each histogram
as pre-aggregated bucket counts and rebuilds the observations from *bucket midpoints*
(``ray/_private/telemetry/open_telemetry_metric_recorder.py``, ``record_histogram_aggregated_batch``: "the histogram
sum value will be an approximation since we use bucket midpoints"), so every ``_sum`` was a sum of midpoints: an
end-to-end latency of 1.2 s added 1.75 (the midpoint of the 1-2.5 s bucket) and means were wrong. It also prefixes
every name with ``ray_``. prometheus-client keeps exact sums; the names below are the contract that the recording
rules and the dashboard use (``monitoring/contract.py``), scraped as job ``sui-pipeline``.

Who records into them: the ingress's counting middleware (deployments/middleware.py: every response once, by
status; 499 when the client left first), the chat handler (latency, time to first token), react_tier's hooks
(deployments/agent_metrics.py), the answer cache, the quality ladder and the canary. How they leave the replica
processes, one scrape endpoint per node: deployments/node_exporter.py.

Label cardinality is bounded: status codes, ``stream`` true|false, tier domain|agent, the configured tools,
finish reasons, a fixed set of rejection reasons. Never request ids or text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Buckets, in seconds, suited to each quantity (the SLO values are bucket edges, so alerts compare exact counts):
# end to end: a tiny-model run takes 0.3-3 s on CPU, a GPU run 1-10 s; the ingress limit is 120 s.
E2E_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 12, 20, 30, 60, 120)
# time to first answer token: the alert's SLO is 8 s (monitoring/prometheus/rules.yml)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 12, 20, 30, 60)
# one LLM call: tens of ms (tiny models, short drafts) to the per-call timeout of 30 s
LLM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30)
# a tool call: KB tools take ~1 ms, ask_sui_expert is an LLM call; tool_timeout_s is 20 s
TOOL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20)
# knowledge-base search, in ms: p50 0.5 ms / p99 0.9 ms in process (benchmarks/results/knowledge), plus the hop to
# a worker thread
KB_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
# steps per run: max_steps 5 by default, at most limits.max_steps_override (20) per request
STEP_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20)
# grounding score in [0, 1] (react_tier.grounding: supported claim sentences / claim sentences; 0.5 = its flag
# threshold)
GROUNDING_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

class PipelineMetrics:
    """Every ``sui_*`` series. ``registry`` (default: a private one) only matters in single-process mode (unit
    tests); in multiprocess mode the values live in the directory and deployments/node_exporter.py's ``exposition``
    reads them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.e2e = Histogram("sui_request_e2e_seconds", "End-to-end latency of a successful chat completion, from "
                             "the ingress receiving it to the last byte.", ("stream",), buckets=E2E_BUCKETS,
                             registry=r)
        self.ttft = Histogram("sui_request_ttft_seconds", "Time to the first answer token (stream) or to the whole "
                              "answer (non-stream), from the ingress receiving the request.", ("stream",),
                              buckets=TTFT_BUCKETS, registry=r)
        self.steps = Histogram("sui_agent_steps", "ReAct steps per agent run (forced steps included).",
                               buckets=STEP_BUCKETS, registry=r)
        self.tool_latency = Histogram("sui_tool_latency_seconds", "Tool call latency by tool and outcome (ok|error).",
                                      ("tool", "outcome"), buckets=TOOL_BUCKETS, registry=r)
        self.llm_latency = Histogram("sui_llm_call_seconds", "Upstream LLM call latency by tier (domain|agent), per "
                                     "HTTP attempt; a stream until its last chunk.", ("tier",), buckets=LLM_BUCKETS,
                                     registry=r)
        self.kb_search = Histogram("sui_kb_search_seconds", "Knowledge-base search latency (successful "
                                   "search_knowledge and lookup_poem calls), ms buckets.", buckets=KB_BUCKETS,
                                   registry=r)
        self.grounding = Histogram("sui_grounding_score", "Grounding score of each answer (react_tier.grounding: "
                                   "cited and supported claim sentences / claim sentences, 0-1).",
                                   buckets=GROUNDING_BUCKETS, registry=r)
        self.requests = Counter("sui_requests_total", "Responses of the ingress by HTTP status (499: the client "
                                "left first; an error inside a started stream counts with its status) and stream.",
                                ("status", "stream"), registry=r)
        self.upstream_errors = Counter("sui_upstream_errors_total", "Failed upstream LLM attempts by tier.",
                                       ("tier",), registry=r)
        self.parse_errors = Counter("sui_parse_errors_total", "Agent-model outputs that did not parse as a ReAct "
                                    "turn.", registry=r)
        self.finish_reasons = Counter("sui_finish_reasons_total", "Agent runs by finish reason (stop, length, "
                                      "max_steps, deadline, degraded).", ("finish_reason",), registry=r)
        self.tokens = Counter("sui_upstream_tokens_total", "Tokens spent upstream by tier and kind "
                              "(prompt|completion).", ("tier", "kind"), registry=r)
        self.rejected = Counter("sui_rejected_total", "Requests refused before an agent run, by reason "
                                "(invalid_json, invalid_request, unauthorized, not_found, method_not_allowed, "
                                "too_large, rate_limited, queue_full, ...).", ("reason",), registry=r)
        self.in_flight = Gauge("sui_requests_in_flight", "Requests the ingress is handling now (all replicas of the "
                               "node).", registry=r, multiprocess_mode="livesum")
        self.answer_cache = Counter("sui_answer_cache_total", "Chat requests by answer-cache verdict (hit|miss|"
                                    "bypass) and reason (react_tier/answer_cache.py: a fixed set).",
                                    ("result", "reason"), registry=r)
        self.quality_step = Counter("sui_quality_step_total", "Admitted chat requests by quality-ladder step "
                                    "(full, fewer_steps, no_draft, extractive).", ("step",), registry=r)
        self.goodput = Counter("sui_goodput_total", "Answers by quality step and outcome: grounded (within the "
                               "SLO, citing an observed source, grounding >= threshold: grounded goodput), late, "
                               "ungrounded.", ("step", "outcome"), registry=r)
        # the canary lane (deployments/canary.py): the worst replica's last pass ("min"), the newest pass ("max")
        self.canary_recall = Gauge("sui_canary_recall_at_5", "Canary: share of questions whose expected evidence "
                                   "was among the first 5 passages the run saw.", registry=r, multiprocess_mode="min")
        self.canary_citations = Gauge("sui_canary_citation_validity", "Canary: share of answers citing only "
                                      "observed, existing passages.", registry=r, multiprocess_mode="min")
        self.canary_grounding = Gauge("sui_canary_grounding", "Canary: mean grounding score of the answers.",
                                      registry=r, multiprocess_mode="min")
        self.canary_errors = Gauge("sui_canary_errors", "Canary: questions of the last pass that failed.",
                                   registry=r, multiprocess_mode="max")
        self.canary_last_run = Gauge("sui_canary_last_run_timestamp_seconds", "Canary: when the last pass ended.",
                                     registry=r, multiprocess_mode="max")
        self.answer_cache_entries = Gauge("sui_answer_cache_entries", "Answers cached (all replicas of the node).",
                                          registry=r, multiprocess_mode="livesum")

    def observe_grounding(self, score: float) -> None:
        """For the grounding checker: one checked answer's score in [0, 1]."""
        self.grounding.observe(min(1.0, max(0.0, score)))

"""The Grafana dashboard (``monitoring/grafana/sui-dashboard.json``), generated from the panel list below.

Why generated: 20 panels of hand-written Grafana JSON drift (ids, grid positions, datasource references); here a
panel is one line of intent — title, unit, PromQL — and ``python -m monitoring.dashboard`` writes the JSON that
the local Grafana import and the Kubernetes ConfigMap (``python -m k8s.generate``) both use as is. A test checks
the committed file equals this output and runs ``promtool check rules`` on a rule file made of every panel query.

The Prometheus datasource is a variable (``${datasource}``), so the same JSON works in any Grafana. Queries use
``$__rate_interval`` (Grafana picks >= 4 scrape intervals); the promtool check substitutes ``5m``.
Tiers are separated by the ``job`` label (sui-pipeline, vllm-domain, vllm-agent, ray), never summed together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitoring.prometheus_server import DASHBOARD_FILE

P = 'job="sui-pipeline"'
V = 'job=~"vllm-domain|vllm-agent"'
R = "[$__rate_interval]"


def _q(quantile: float, metric: str, by: str = "le", sel: str = P) -> str:
    return f"histogram_quantile({quantile}, sum by ({by}) (rate({metric}_bucket{{{sel}}}{R})))"


@dataclass
class Panel:
    title: str
    targets: list[tuple[str, str]]  # (expr, legend)
    unit: str = "short"
    kind: str = "timeseries"
    stack: bool = False
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


ROWS: list[tuple[str, list[Panel]]] = [
    ("Pipeline (sui-pipeline)", [
        Panel("Requests by status", [(f"sum by (status) (rate(sui_requests_total{{{P}}}{R}))", "{{status}}")],
              unit="reqps", stack=True, description="Every response the ingress sent, by HTTP status."),
        Panel("End-to-end latency", [(_q(q, "sui_request_e2e_seconds"), f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)]
              + [(f"sum(rate(sui_request_e2e_seconds_sum{{{P}}}{R}))"
                  f" / sum(rate(sui_request_e2e_seconds_count{{{P}}}{R}))", "mean")], unit="s"),
        Panel("Time to first token", [(_q(q, "sui_request_ttft_seconds", "le, stream"),
                                       f"p{int(q * 100)} stream={{{{stream}}}}") for q in (0.5, 0.95, 0.99)], unit="s",
              description="Streamed: the first answer token; non-streamed: the whole answer. SLO: p95 <= 8 s."),
        Panel("Error and degraded ratios", [
            (f"sum(rate(sui_requests_total{{{P}, status=~\"5..\"}}{R})) / sum(rate(sui_requests_total{{{P}}}{R}))",
             "5xx / all responses"),
            ((f"sum(rate(sui_finish_reasons_total{{{P}, finish_reason=\"degraded\"}}{R}))"
              f" / sum(rate(sui_finish_reasons_total{{{P}}}{R}))"), "degraded / agent runs")], unit="percentunit"),
        Panel("Finish reasons", [(f"sum by (finish_reason) (rate(sui_finish_reasons_total{{{P}}}{R}))",
                                  "{{finish_reason}}")], unit="ops", stack=True),
        Panel("Agent steps per run", [
            (f"sum(rate(sui_agent_steps_sum{{{P}}}{R})) / sum(rate(sui_agent_steps_count{{{P}}}{R}))", "mean"),
            (_q(0.95, "sui_agent_steps"), "p95")]),
        Panel("Tool latency p95 by tool", [(_q(0.95, "sui_tool_latency_seconds", "le, tool"), "{{tool}}")], unit="s"),
        Panel("Tool calls by outcome", [(f"sum by (tool, outcome) (rate(sui_tool_latency_seconds_count{{{P}}}{R}))",
                                         "{{tool}} {{outcome}}")], unit="ops"),
        Panel("LLM call latency p95 by tier", [(_q(0.95, "sui_llm_call_seconds", "le, tier"), "{{tier}}")], unit="s"),
        Panel("Upstream errors by tier", [(f"sum by (tier) (rate(sui_upstream_errors_total{{{P}}}{R}))", "{{tier}}"),
                                          (f"sum(rate(sui_parse_errors_total{{{P}}}{R}))", "ReAct parse errors")],
              unit="ops"),
        Panel("Rejected requests by reason", [(f"sum by (reason) (rate(sui_rejected_total{{{P}}}{R}))", "{{reason}}")],
              unit="reqps", stack=True),
        Panel("In flight / upstream tokens", [
            (f"sum(sui_requests_in_flight{{{P}}})", "in flight"),
            (f"sum by (tier, kind) (rate(sui_upstream_tokens_total{{{P}}}{R}))", "{{tier}} {{kind}} tok/s")]),
        Panel("Grounded goodput and quality steps", [
            (f"sum(rate(sui_goodput_total{{{P}, outcome=\"grounded\"}}{R}))", "grounded goodput"),
            (f"sum(rate(sui_requests_total{{{P}}}{R}))", "offered (all responses)"),
            (f"sum(rate(sui_requests_total{{{P}, status=\"429\"}}{R}))", "429s"),
            (f"sum by (step) (rate(sui_quality_step_total{{{P}}}{R}))", "step {{step}}")], unit="reqps",
              description="Grounded goodput: answers within the SLO citing an observed source with grounding >= "
                          "0.5 (alert SuiGroundedGoodputLow below half of the responses). The quality ladder's "
                          "steps: full, fewer_steps, no_draft, extractive (docs/agent_aware_serving.md)."),
        Panel("Canary: answer quality", [
            (f"min(sui_canary_recall_at_5{{{P}}})", "recall@5 of evidence"),
            (f"min(sui_canary_citation_validity{{{P}}})", "citation validity"),
            (f"min(sui_canary_grounding{{{P}}})", "grounding (mean)")], unit="percentunit",
              description="The canary lane's last pass (deployments/canary.py; `suiqa canary` runs it once). "
                          "Alerts: recall@5 < 0.5, citation validity < 0.8, grounding < 0.3, no pass for 2 h."),
        Panel("Answer cache", [
            (f"sum by (result) (rate(sui_answer_cache_total{{{P}}}{R}))", "{{result}}"),
            (f"sum(sui_answer_cache_entries{{{P}}})", "entries")],
              description="Verdicts (hit, miss, bypass) of the evidence-keyed answer cache; entries per node."),
        Panel("Knowledge-base search and grounding", [
            (_q(0.95, "sui_kb_search_seconds"), "KB search p95 (s)"),
            (_q(0.5, "sui_grounding_score"), "grounding score p50")]),
    ]),
    ("vLLM tiers (vllm-domain, vllm-agent)", [
        Panel("Requests waiting / running", [(f"sum by (job) (vllm:num_requests_waiting{{{V}}})", "{{job}} waiting"),
                                             (f"sum by (job) (vllm:num_requests_running{{{V}}})", "{{job}} running")],
              description="KEDA scales each tier on its waiting requests (4 per pod)."),
        Panel("KV-cache usage", [(f"max by (job) (vllm:kv_cache_usage_perc{{{V}}})", "{{job}} max")],
              unit="percentunit"),
        Panel("Prefix-cache hit ratio", [((f"sum by (job) (rate(vllm:prefix_cache_hits_total{{{V}}}{R}))"
                                           f" / sum by (job) (rate(vllm:prefix_cache_queries_total{{{V}}}{R}))"),
                                          "{{job}}")], unit="percentunit"),
        Panel("vLLM time to first token p95", [(_q(0.95, "vllm:time_to_first_token_seconds", "job, le", V), "{{job}}")],
              unit="s"),
        Panel("vLLM request latency p95", [(_q(0.95, "vllm:e2e_request_latency_seconds", "job, le", V), "{{job}}")],
              unit="s"),
        Panel("Generation tokens/s", [(f"sum by (job) (rate(vllm:generation_tokens_total{{{V}}}{R}))", "{{job}}")],
              unit="short"),
    ]),
    ("Ray Serve (ray)", [
        Panel("Serve replicas", [
            ('sum by (deployment) (ray_serve_deployment_replica_healthy{job="ray"})', "{{deployment}} healthy"),
            ('max by (deployment) (ray_serve_autoscaling_target_replicas{job="ray"})', "{{deployment}} target")]),
        Panel("Serve queue", [
            ('sum by (deployment) (ray_serve_deployment_queued_queries{job="ray"})', "{{deployment}} queued"),
            ('sum by (deployment) (ray_serve_replica_processing_queries{job="ray"})', "{{deployment}} processing")]),
        Panel("429s at Ray's proxy (front door + replicas)", [
            ('sum(rate(ray_serve_num_http_error_requests_total{job="ray",error_code="429"}[$__rate_interval]))',
             "all 429s"),
            (f'sum(rate(sui_rejected_total{{{P},reason=~"rate_limited|queue_full"}}{R}))', "429s of the replicas")],
              unit="reqps"),
        Panel("Scrape targets up", [('up{job=~"sui-pipeline|vllm-domain|vllm-agent|ray"}', "{{job}} {{instance}}")],
              extra={"fieldConfig": {"defaults": {"min": 0, "max": 1}}}),
    ]),
]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    custom = {"stacking": {"mode": "normal" if panel.stack else "none"}, "fillOpacity": 20 if panel.stack else 0}
    out: dict[str, Any] = {
        "id": panel_id, "type": panel.kind, "title": panel.title, "description": panel.description,
        "datasource": DATASOURCE, "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit, "custom": custom}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(panel.targets)],
    }
    for key, value in panel.extra.items():
        if key == "fieldConfig":
            out["fieldConfig"]["defaults"].update(value["defaults"])
        else:
            out[key] = value
    return out


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, panel_id = 0, 1
    for title, row in ROWS:
        panels.append({"id": panel_id, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        panel_id, y = panel_id + 1, y + 1
        for i, panel in enumerate(row):
            panels.append(_panel_json(panel, panel_id, 12 * (i % 2), y + 8 * (i // 2)))
            panel_id += 1
        y += 8 * ((len(row) + 1) // 2)
    return {
        "uid": "sui-qa-stack", "title": "Sui QA serving stack", "tags": ["sui-qa", "vllm", "ray-serve"],
        "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"}, "graphTooltip": 1,
        "annotations": {"list": []},
        "templating": {"list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}]},
        "panels": panels,
    }


def dashboard_json() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def panel_expressions(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of every panel."""
    return [(panel["title"], target["expr"]) for panel in board["panels"] for target in panel.get("targets", [])]


def main(out: Path = DASHBOARD_FILE) -> None:
    out.write_text(dashboard_json(), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

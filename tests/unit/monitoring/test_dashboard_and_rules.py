"""monitoring/: the rule file (promtool check + promtool unit tests), the dashboard (committed = generated, every
panel query parses, names from the metric contract), the scrape-config generator and the launcher's errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring import contract
from monitoring.dashboard import dashboard, dashboard_json, panel_expressions
from monitoring.prometheus_server import (
    DASHBOARD_FILE,
    JOBS,
    RULES_FILE,
    PrometheusError,
    PrometheusServer,
    scrape_config,
)

TESTS_DIR = RULES_FILE.parent / "tests"
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package (scripts/system_deps.sh)")
    return path


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=cwd, timeout=120)


def test_rules_pass_promtool_check(promtool):
    out = _run([promtool, "check", "rules", str(RULES_FILE)])
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_unit_tests_pass(promtool):
    files = sorted(TESTS_DIR.glob("*.yml"))
    assert files
    out = _run([promtool, "test", "rules", *map(str, files)], cwd=TESTS_DIR)
    assert out.returncode == 0, out.stdout + out.stderr


def test_rule_unit_tests_catch_a_wrong_threshold(promtool, tmp_path):
    """The promtool tests can fail: the same tests against rules with a laxer error-ratio alert do."""
    (tmp_path / "tests").mkdir()
    lax = RULES_FILE.read_text(encoding="utf-8").replace("ratio_rate5m > 0.05", "ratio_rate5m > 0.5")
    assert lax != RULES_FILE.read_text(encoding="utf-8")
    (tmp_path / "rules.yml").write_text(lax, encoding="utf-8")
    shutil.copy(TESTS_DIR / "rules_test.yml", tmp_path / "tests")
    out = _run([promtool, "test", "rules", "tests/rules_test.yml"], cwd=tmp_path)
    assert out.returncode != 0 and "SuiPipelineErrorRatioHigh" in out.stdout + out.stderr


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
            for rule in group["rules"]]


def test_rules_cover_the_issue_list_and_alerts_are_labelled():
    rules = _rules()
    recorded = {rule["record"] for rule in rules if "record" in rule}
    for name in ("sui:request_ttft_seconds:p50_5m", "sui:request_ttft_seconds:p95_5m",
                 "sui:request_ttft_seconds:p99_5m", "sui:request_e2e_seconds:p95_5m", "sui:requests:rate5m",
                 "sui:request_errors:ratio_rate5m",
                 "sui:degraded:ratio_rate5m", "sui:agent_steps:mean_5m", "sui:tool_latency_seconds:p95_5m",
                 "sui:upstream_errors:rate5m", "job:vllm_num_requests_waiting:sum", "job:vllm_kv_cache_usage_perc:max",
                 "job:vllm_prefix_cache_hit:ratio_rate5m", "sui:goodput:ratio_rate5m", "sui:quality_step:rate5m",
                 "sui:answer_cache:hit_ratio_rate5m", "sui:canary_recall_at_5:min",
                 "sui:canary_citation_validity:min", "sui:canary_grounding:min", "sui:canary_age_seconds:max"):
        assert name in recorded, name
    alerts = [rule for rule in rules if "alert" in rule]
    assert {a["alert"] for a in alerts} == {"SuiPipelineErrorRatioHigh", "SuiPipelineTTFTOverSLO",
                                            "SuiVLLMQueueBuilding", "SuiVLLMKVCacheNearFull", "SuiTierDown",
                                            "SuiGroundedGoodputLow", "SuiCanaryRecallLow",
                                            "SuiCanaryCitationsInvalid", "SuiCanaryGroundingLow", "SuiCanaryStale"}
    for alert in alerts:
        assert alert["labels"]["severity"] in {"warning", "critical"} and alert.get("for"), alert["alert"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        for name in re.findall(r"\b((?:sui|job):[a-z_:0-9]+)", alert["expr"]):
            assert name in recorded, f"{alert['alert']} uses {name}, which no rule records"


def _selected_names(expr: str) -> set[str]:
    return set(SELECTOR.findall(expr))


def test_rules_and_panels_use_only_contract_metric_names():
    exprs = [rule["expr"] for rule in _rules()] + [expr for _, expr in panel_expressions(dashboard())]
    used = set().union(*map(_selected_names, exprs))
    assert used, "the selector regex found nothing"
    assert used <= contract.KNOWN_SERIES, sorted(used - contract.KNOWN_SERIES)
    assert {n for n in used if n.startswith("ray_sui")} == set()  # the pipeline's series have no ray_ prefix


def test_every_selector_is_scoped_to_a_job():
    """No double counting across tiers: every selected series carries a job matcher (except `up`'s own)."""
    exprs = [rule["expr"] for rule in _rules()] + [expr for _, expr in panel_expressions(dashboard())]
    for expr in exprs:
        for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr):
            assert "job" in match.group(2), f"unscoped selector {match.group(0)} in {expr}"


def test_committed_dashboard_equals_generator():
    assert DASHBOARD_FILE.read_text(encoding="utf-8") == dashboard_json(), \
        "monitoring/grafana/sui-dashboard.json is stale: run `python -m monitoring.dashboard`"


def test_dashboard_shape_and_datasource_variable():
    board = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    variables = board["templating"]["list"]
    assert [(v["name"], v["type"], v["query"]) for v in variables] == [("datasource", "datasource", "prometheus")]
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
    text = json.dumps(board)
    for needle in ("sui_requests_total", "sui_request_ttft_seconds", "sui_agent_steps", "sui_tool_latency_seconds",
                   "sui_finish_reasons_total", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                   "ray_serve_deployment_replica_healthy", "ray_serve_deployment_queued_queries"):
        assert needle in text, needle
    # both vLLM tiers, separated by job
    assert 'sum by (job) (vllm:num_requests_waiting{job=~\\"vllm-domain|vllm-agent\\"})' in text


def test_every_panel_query_parses(promtool, tmp_path):
    exprs = panel_expressions(dashboard())
    rules = [{"record": f"panel:check_{i}:expr", "expr": expr.replace("$__rate_interval", "5m")}
             for i, (_, expr) in enumerate(exprs)]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}), encoding="utf-8")
    out = _run([promtool, "check", "rules", str(path)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(rules)} rules found" in out.stdout
    # and the check does reject a broken panel query
    path.write_text(yaml.safe_dump({"groups": [{"name": "p", "rules": [
        {"record": "bad:expr", "expr": "sum(rate(sui_requests_total[5m]"}]}]}), encoding="utf-8")
    assert _run([promtool, "check", "rules", str(path)]).returncode != 0


def test_scrape_config_jobs_and_rules(promtool, tmp_path):
    targets = {"sui-pipeline": ["127.0.0.1:8080"], "vllm-domain": ["127.0.0.1:8000"],
               "vllm-agent": ["127.0.0.1:8001"], "ray": ["127.0.0.1:8090"]}
    config = scrape_config(targets, metrics_paths={"ray": "/metrics"})
    assert [job["job_name"] for job in config["scrape_configs"]] == list(JOBS)
    assert config["scrape_configs"][1]["static_configs"] == [{"targets": ["127.0.0.1:8000"]}]
    assert config["rule_files"] == [str(RULES_FILE)]
    server = PrometheusServer(tmp_path, 19090, config=config)
    out = _run([promtool, "check", "config", str(server.write_config())])
    assert out.returncode == 0, out.stdout + out.stderr


def test_scrape_config_rejects_urls():
    with pytest.raises(ValueError, match="host:port"):
        scrape_config({"vllm-domain": ["http://127.0.0.1:8000"]})


def test_missing_binary_is_one_line_error(tmp_path):
    server = PrometheusServer(tmp_path, 19091, {}, binary=str(tmp_path / "no-such-prometheus"))
    with pytest.raises(PrometheusError) as info:
        server.start()
    assert "not found" in str(info.value) and "\n" not in str(info.value) and server.process is None


def test_system_deps_script_reports_present_tools():
    script = RULES_FILE.parents[2] / "scripts" / "system_deps.sh"
    out = _run(["bash", str(script), "--check"])
    assert out.returncode == 0 and "all present" in out.stdout, out.stdout + out.stderr

"""Smoke (seconds) of the Locust user against the real domain vLLM server and the HF baseline server.

Not a timed test: it checks that TTFT / TPOT / E2E / output tokens are recorded, both in our records and as Locust
events, and that the baseline really runs one generate at a time.
"""

from __future__ import annotations

import httpx
import pytest

from benchmarks.runner import LoadSpec, run_step
from benchmarks.stats import SLO
from benchmarks.targets import hf_baseline_server
from tests.support import free_port

pytestmark = pytest.mark.integration


def _assert_recorded(step: dict, max_tokens: int, log_text: str) -> None:
    assert step["requests"] >= 2 and step["failures"] == 0, step["errors"]
    for metric in ("ttft_ms", "tpot_ms", "e2e_ms"):
        assert step[metric]["n"] >= 2 and step[metric]["p50"] > 0, metric
    assert step["ttft_ms"]["p50"] <= step["e2e_ms"]["p50"]
    assert step["output_tokens"]["p50"] == max_tokens      # ignore_eos + usage counting
    for event in ("LLM      TTFT", "LLM      TPOT", "LLM      E2E", "LLM      output_tokens"):
        assert event in log_text, f"Locust did not report {event!r}"


def test_locust_user_records_metrics_against_vllm(domain_server, tmp_path):
    spec = LoadSpec(host=domain_server.base_url, model=domain_server.profile.api_model_name, max_tokens="8",
                    stop_timeout_s=30)
    step = run_step(spec, users=2, duration_s=3, work_dir=tmp_path, slo=SLO())
    _assert_recorded(step, 8, (tmp_path / "locust-u2.log").read_text())


def test_hf_baseline_serves_one_request_at_a_time(tiny_models, tmp_path):
    with hf_baseline_server(str(tiny_models["domain"]), "internlm2-chat-sui", port=free_port(),
                            device="cpu", log_dir=tmp_path) as url:
        spec = LoadSpec(host=url, model="internlm2-chat-sui", max_tokens="6", stop_timeout_s=30)
        step = run_step(spec, users=3, duration_s=3, work_dir=tmp_path, slo=SLO())
        _assert_recorded(step, 6, (tmp_path / "locust-u3.log").read_text())
        stats = httpx.get(f"{url}/baseline/stats").json()
        assert stats["generate_calls"] >= step["requests"] and stats["max_running"] == 1
        bad = httpx.post(f"{url}/v1/chat/completions", json={"model": "internlm2-chat-sui", "messages": []})
        assert bad.status_code == 400

"""The soak runner against a small real HTTP server (uvicorn on 127.0.0.1, the pipeline app around the contract
double): records every response, samples RSS, writes summary.json, CSVs and the plot."""

from __future__ import annotations

import json
import threading
import time

import uvicorn

from benchmarks.soak.run import main
from deployments.api_router import create_app
from deployments.auth import KeyRing, parse_keys
from deployments.config import ApiSettings
from deployments.serving_chat import OpenAIServingChat
from tests.support import free_port
from tests.unit.deployments.helpers import ContractAgent


def test_soak_runner_reports_errors_latency_and_plot(tmp_path):
    app = create_app(OpenAIServingChat(ApiSettings.load(admission={"per_key_rpm": 600, "per_key_burst": 5}),
                                       ContractAgent()), keys=KeyRing(parse_keys("soak:sk-soak-0123456789abcdef")))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        main(["--url", f"http://127.0.0.1:{port}", "--api-key", "sk-soak-0123456789abcdef", "--duration-s", "3",
              "--concurrency", "3", "--processes", "2", "--sample-s", "1", "--out", str(tmp_path)])
    finally:
        server.should_exit = True
        thread.join(10)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] > 5 and summary["requests"] == summary["ok"] + sum(summary["errors_by_type"].values())
    assert summary["status_counts"].get("429", 0) > 0  # 10 requests/s per key: the bucket sheds some
    assert set(summary["errors_by_type"]) <= {"HTTP 429"} and summary["finish_reasons"] == {"stop": summary["ok"]}
    assert (tmp_path / "soak.png").stat().st_size > 10_000 and (tmp_path / "records.csv").exists()
    shed = summary["shed_429"]  # every refusal timed and checked for Retry-After
    assert shed["n"] == summary["status_counts"]["429"] == shed["with_retry_after"] and 0 < shed["p50"] <= shed["max"]
    probe = summary["health_probe"]  # /health probed about once a second while the load ran
    assert 2 <= probe["n"] <= 5 and probe["not_200"] == 0 and 0 < probe["p50"] <= probe["max"] < 1
    assert (tmp_path / "health.csv").read_text().startswith("t,status,latency_s")
    # 3 clients split over 2 processes, each loop's lag recorded; every client sent requests
    assert summary["client_loop_lag"]["processes"] == 2 and summary["client_loop_lag"]["max_ms"] >= 0
    clients = {line.split(",")[1] for line in (tmp_path / "records.csv").read_text().splitlines()[1:]}
    assert clients == {"0", "1", "2"}

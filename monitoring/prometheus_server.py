"""A real Prometheus server for the local stack: a generated scrape config and a launcher for Debian's binary.

Why Debian's ``/usr/bin/prometheus`` (package ``prometheus``, 2.42): it is installed by the set-up
(``scripts/system_deps.sh``) from the distribution, never downloaded by a script, and it ships ``promtool``, which
the tests use to check the same rule file (``monitoring/prometheus/rules.yml``) that Kubernetes gets as a
PrometheusRule.

The server runs in its own process group with its TSDB under ``config_dir`` (2 h retention: a local stack is
short-lived). Scrape and rule-evaluation intervals default to 5 s: the local stack is for looking at a few
requests, and a 5 m rate then has 60 samples. Stopping is SIGTERM to the group, then SIGKILL after a grace period.
A missing binary, a busy port, or a server that exits during start-up is a one-line :class:`PrometheusError`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from suiqa.errors import SuiqaError

MONITORING_DIR = Path(__file__).resolve().parent
RULES_FILE = MONITORING_DIR / "prometheus" / "rules.yml"
DASHBOARD_FILE = MONITORING_DIR / "grafana" / "sui-dashboard.json"
DEFAULT_BINARY = "/usr/bin/prometheus"

# The scrape jobs the rules and the dashboard select on (`job` label); Kubernetes monitors set the same names.
JOBS = ("sui-pipeline", "vllm-domain", "vllm-agent", "ray")
METRICS_PATH = "/metrics"


class PrometheusError(SuiqaError):
    """Prometheus could not be started or queried; the message is one line."""


def scrape_config(targets: dict[str, list[str]], *, scrape_interval: str = "5s",
                  evaluation_interval: str | None = None, rule_files: list[str | Path] | None = None,
                  metrics_paths: dict[str, str] | None = None) -> dict[str, Any]:
    """A ``prometheus.yml`` as a dict: one scrape job per entry of ``targets`` (job name -> ``host:port`` list).

    ``rule_files`` defaults to the shipped rules; ``metrics_paths`` overrides ``/metrics`` per job.
    """
    for job, hosts in targets.items():
        for host in hosts:
            if "://" in host or ":" not in host:
                raise ValueError(f"scrape target of {job!r} must be host:port, got {host!r}")
    rules = [RULES_FILE] if rule_files is None else rule_files
    return {
        "global": {"scrape_interval": scrape_interval,
                   "evaluation_interval": evaluation_interval or scrape_interval,
                   "external_labels": {"stack": "suiqa-local"}},
        "rule_files": [str(Path(path).resolve()) for path in rules],
        "scrape_configs": [
            {"job_name": job,
             "metrics_path": (metrics_paths or {}).get(job, METRICS_PATH),
             "static_configs": [{"targets": list(hosts)}]}
            for job, hosts in targets.items()
        ],
    }


def stack_targets(urls: dict[str, str]) -> dict[str, list[str]]:
    """Scrape targets of a running local stack from the URLs `suiqa up` records (``suiqa status``).

    ``api`` -> ``sui-pipeline`` (the ingress's ``/metrics``), ``metrics_ray`` -> ``ray``, ``vllm_domain`` /
    ``vllm_agent`` -> ``vllm-domain`` / ``vllm-agent`` (the shared-process profile has only ``vllm_domain``).
    """
    from urllib.parse import urlsplit

    jobs = {"api": "sui-pipeline", "vllm_domain": "vllm-domain", "vllm_agent": "vllm-agent", "metrics_ray": "ray"}
    targets: dict[str, list[str]] = {}
    for key, job in jobs.items():
        if key in urls:
            parts = urlsplit(urls[key])
            targets[job] = [f"{parts.hostname}:{parts.port}"]
    return targets


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PrometheusServer:
    """``PrometheusServer(config_dir, port, targets).start().wait_ready()``; ``stop()`` ends its process group."""

    def __init__(self, config_dir: Path, port: int = 9090, targets: dict[str, list[str]] | None = None, *,
                 binary: str = DEFAULT_BINARY, host: str = "127.0.0.1", config: dict[str, Any] | None = None,
                 retention: str = "2h"):
        self.config_dir = Path(config_dir)
        self.port = port
        self.host = host
        self.binary = binary
        self.retention = retention
        self.config = config if config is not None else scrape_config(targets or {})
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        return self.config_dir / "prometheus.log"

    def write_config(self) -> Path:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        header = "# Generated by monitoring/prometheus_server.py (scrape_config); rewritten on every start.\n"
        self.config_file.write_text(header + yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")
        return self.config_file

    def command(self) -> list[str]:
        return [self.binary, f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.config_dir / 'data'}",
                f"--storage.tsdb.retention.time={self.retention}",
                f"--web.listen-address={self.host}:{self.port}"]

    def start(self) -> Self:
        binary = shutil.which(self.binary)
        if binary is None:
            raise PrometheusError(f"Prometheus binary not found: {self.binary} (install Debian's `prometheus` "
                                  f"package: scripts/system_deps.sh)")
        if not _port_free(self.host, self.port):
            raise PrometheusError(f"Prometheus port {self.port} on {self.host} is already in use")
        self.write_config()
        with self.log_path.open("w", encoding="utf-8") as log_file:
            self.process = subprocess.Popen(self.command(), stdout=log_file, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until ``/-/ready`` answers 200 (rules loaded, TSDB open)."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.process.poll() if self.process else None
                if code is not None:
                    self.process = None
                    raise PrometheusError(f"Prometheus exited with code {code} during start-up: {self._last_log_line()} "
                                          f"(log: {self.log_path})")
                try:
                    if client.get(f"{self.url}/-/ready").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    last = self._last_log_line()
                    self.stop()
                    raise PrometheusError(f"Prometheus not ready after {timeout_s:.0f} s: {last} (log: {self.log_path})")
                time.sleep(0.3)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; returns the ``result`` list of Prometheus's HTTP API."""
        resp = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5.0)
        body = resp.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {body.get('error', resp.text[:200])}")
        return body["data"]["result"]

    def stop(self, grace_s: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _last_log_line(self) -> str:
        try:
            with self.log_path.open(encoding="utf-8", errors="replace") as fh:
                lines = [line.strip() for line in deque(fh, maxlen=20) if line.strip()]
        except FileNotFoundError:
            return "no output"
        errors = [line for line in lines if "level=error" in line or "err=" in line]
        return ((errors or lines or ["no output"])[-1])[:300]

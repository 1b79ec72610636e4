"""Helpers shared by the tests (not fixtures): free ports, and the `suiqa` command line, ports and processes
of a stack a test starts (tests/conftest.py's shared one, or a test's own)."""

from __future__ import annotations

import subprocess
import sys

from suiqa.net import free_port

__all__ = ["STACK_CLI", "free_port", "stack_ports", "stack_processes"]

STACK_CLI = [sys.executable, "-m", "stackctl.cli"]


def stack_ports() -> dict[str, str]:
    """Free ports for one `suiqa up` (each stack its own: the shared one and a test's own)."""
    return {"SUIQA_DOMAIN_PORT": str(free_port()), "SUIQA_API_PORT": str(free_port()),
            "SUIQA_STACK_RAY_PORT": str(free_port()), "SUIQA_STACK_RAY_METRICS_EXPORT_PORT": str(free_port()),
            "SUIQA_API_METRICS_PORT": str(free_port()), "SUIQA_STACK_PROMETHEUS_PORT": str(free_port())}


def stack_processes(env: dict[str, str]) -> list[str]:
    """Processes that belong to this stack: vLLM on our domain port, or any Ray daemon on our GCS port."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    marks = (f"--port {env['SUIQA_DOMAIN_PORT']}", f"--port={env['SUIQA_STACK_RAY_PORT']}",
             f"--web.listen-address=127.0.0.1:{env['SUIQA_STACK_PROMETHEUS_PORT']}",
             f":{env['SUIQA_STACK_RAY_PORT']}", "ray::ServeController", "ray::ServeReplica", "ray::ProxyActor")
    return [line for line in out if any(m in line for m in marks) and "ps -eo" not in line]

"""Small network checks shared by the launchers (vLLM, Prometheus, the stack, the benchmarks)."""

from __future__ import annotations

import socket
import time

from suiqa.errors import SuiqaError


def port_in_use(host: str, port: int) -> bool:
    """True when ``host:port`` cannot be bound (something listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def wait_http_ok(url: str, timeout_s: float, interval_s: float = 1.0) -> None:
    """Poll ``GET url`` until it answers 200; SuiqaError naming the last answer after ``timeout_s``."""
    import httpx

    deadline, last = time.monotonic() + timeout_s, "no answer"
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(url, timeout=5)
            if resp.status_code == 200:
                return
            last = f"HTTP {resp.status_code}: {resp.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(interval_s)
    raise SuiqaError(f"{url} not ready after {timeout_s:.0f} s (last: {last})")

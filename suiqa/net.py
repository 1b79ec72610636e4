"""Small network and process checks shared by the launchers (vLLM, Prometheus, the web UI, the stack, the
benchmarks)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http_ok(url: str, timeout_s: float, interval_s: float = 1.0, *, proc: subprocess.Popen | None = None,
                 log: Path | None = None) -> None:
    """Poll ``GET url`` until it answers 200; SuiqaError naming the last answer after ``timeout_s``, or at once
    (with the last line of ``log``) when ``proc``, the server being waited for, exits first."""
    import httpx

    deadline, last = time.monotonic() + timeout_s, "no answer"
    where = f" (log: {log})" if log else ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log and log.is_file() else []
            raise SuiqaError(f"the server for {url} exited with code {proc.returncode} during start-up: "
                             f"{' '.join(tail)[:300] or 'no output'}{where}")
        try:
            resp = httpx.get(url, timeout=5)
            if resp.status_code == 200:
                return
            last = f"HTTP {resp.status_code}: {resp.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(interval_s)
    raise SuiqaError(f"{url} not ready after {timeout_s:.0f} s (last: {last}){where}")


def stop_process_group(pgid: int, grace_s: float = 20.0) -> None:
    """SIGTERM the group, wait up to ``grace_s``, then SIGKILL whatever is left."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_recorded(record: Path, grace_s: float = 20.0) -> dict | None:
    """Stop the process group that a run record names (a JSON file with its ``pgid``, as `suiqa up`, `suiqa serve`,
    `suiqa webui` write them) and remove the record. Returns what the record said, or None when there is none."""
    if not record.is_file():
        return None
    info = json.loads(record.read_text())
    stop_process_group(info["pgid"], grace_s)
    record.unlink(missing_ok=True)
    return info


def stop_child(proc: subprocess.Popen | None, grace_s: float) -> None:
    """Stop a server this process started with ``start_new_session=True`` (its whole process group, as
    :func:`stop_process_group`) and reap it; nothing to do when there is none or it has exited."""
    if proc is None or proc.poll() is not None:
        return
    stop_process_group(proc.pid, grace_s)
    proc.wait()


class ServerProcess:
    """The ``with`` half of a launcher (vLLM, Prometheus): entering starts the server and waits until it is ready,
    stopping it if that fails; leaving stops it. Subclasses define start(), wait_ready() and stop()."""

    def start(self) -> Self:
        raise NotImplementedError

    def wait_ready(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

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

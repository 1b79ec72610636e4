"""Start, watch and stop one vLLM OpenAI-compatible server as a subprocess.

Failures are reported as one line (:class:`VLLMLaunchError`) that names the cause — missing model folder, busy
port, the server dying during start-up (with the error line from its log), or a start-up timeout — and where the
full log is. The server runs in its own process group, so stopping it (SIGTERM, then SIGKILL after a grace period)
also ends its engine-core and worker processes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import time
from collections import deque
from pathlib import Path

import httpx

from serving.config import ServingProfile
from suiqa.errors import SuiqaError
from suiqa.net import ServerProcess, port_in_use, stop_child, stop_recorded
from suiqa.paths import logs_dir, run_dir

log = logging.getLogger(__name__)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_ERROR_LINE = re.compile(r"(Error|Exception|error:|RuntimeError|Traceback)")


class VLLMLaunchError(SuiqaError):
    """vLLM could not be started; the message is one line."""


def log_tail(path: Path, lines: int = 30) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n") for line in deque(fh, maxlen=lines)]
    except FileNotFoundError:
        return []


def _last_error(lines: list[str]) -> str:
    for line in reversed(lines):
        if _ERROR_LINE.search(line) and not line.lstrip().startswith("File "):
            return re.sub(r"^.*?(\w*(Error|Exception)\b)", r"\1", line.strip())[:300]
    return lines[-1].strip()[:300] if lines else "no output"


def state_file(profile: ServingProfile) -> Path:
    """Where the launcher records a running server (pid, process group, URL) for `suiqa down` / `suiqa status`."""
    return run_dir() / f"vllm-{profile.role}-{profile.port}.json"


def stop_vllm_servers(role: str | None = None) -> list[dict]:
    """Stop every vLLM server recorded in the run directory (`suiqa down`, the GPU bench's llm-down), or only those
    of one ``role`` (the GPU bench restarts the agent tier with other settings and keeps the domain tier up);
    returns their records."""
    pattern = f"vllm-{role}-*.json" if role else "vllm-*.json"
    return [info for path in sorted(run_dir().glob(pattern)) if (info := stop_recorded(path)) is not None]


class VLLMServer(ServerProcess):
    """A vLLM server for one :class:`ServingProfile`. Use as a context manager or call start()/stop()."""

    def __init__(self, profile: ServingProfile, log_path: Path | None = None):
        self.profile = profile
        self.log_path = log_path or logs_dir() / f"vllm-{profile.role}-{profile.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return self.profile.base_url

    @property
    def label(self) -> str:
        return f"vLLM {self.profile.role} server ({self.profile.name}, port {self.profile.port})"

    def preflight(self) -> None:
        model = self.profile.model_path
        if Path(model).exists():
            if not (Path(model) / "config.json").is_file():
                raise VLLMLaunchError(f"{self.label}: {model} has no config.json; is it a model folder?")
        elif not (self.profile.allow_hub_download and _HUB_ID.match(model)):
            hint = " (build it with `suiqa models build-tiny`)" if "{models_dir}" in self.profile.model else ""
            raise VLLMLaunchError(f"{self.label}: model folder not found: {model}{hint}")
        for name, path in self.profile.lora_modules.items():
            if not (Path(path) / "adapter_config.json").is_file():
                raise VLLMLaunchError(f"{self.label}: LoRA adapter {name!r} has no adapter_config.json in {path}")
        if port_in_use(self.profile.host, self.profile.port):
            raise VLLMLaunchError(f"{self.label}: port {self.profile.port} on {self.profile.host} is already in use")
        if self.profile.device == "gpu" and Path(model).is_dir():
            from serving.checkpoint import CheckpointLayoutError, llama_layout_for_gpu

            try:
                served = llama_layout_for_gpu(Path(model), self.profile.internlm2_layout)
            except (CheckpointLayoutError, SuiqaError) as exc:
                raise VLLMLaunchError(f"{self.label}: {exc}") from None
            if str(served) != model:
                self.profile = self.profile.model_copy(update={"model": str(served)})

    def start(self) -> VLLMServer:
        self.preflight()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.profile.command()
        log.info("starting %s: %s", self.label, " ".join(cmd))
        with self.log_path.open("w", encoding="utf-8") as log_file:
            log_file.write("$ " + " ".join(cmd) + "\n")
            log_file.flush()
            self.process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=self.profile.environment(), start_new_session=True)
        if self.profile.nice:  # set before vLLM (seconds of imports later) forks its engine: they inherit it
            os.setpriority(os.PRIO_PROCESS, self.process.pid, self.profile.nice)
        self._write_state()
        return self

    def wait_ready(self, timeout_s: float | None = None) -> None:
        timeout_s = timeout_s or self.profile.startup_timeout_s
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.process.poll() if self.process else None
                if code is not None:
                    self._clear_state()
                    raise VLLMLaunchError(
                        f"{self.label} exited with code {code} during start-up: "
                        f"{_last_error(log_tail(self.log_path))} (log: {self.log_path})")
                try:
                    if client.get(f"{self.base_url}/health").status_code == 200:
                        log.info("%s ready at %s", self.label, self.base_url)
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    last = _last_error(log_tail(self.log_path))
                    self.stop()
                    raise VLLMLaunchError(f"{self.label} not ready after {timeout_s:.0f} s; last log line: {last} "
                                          f"(log: {self.log_path})")
                time.sleep(0.5)

    def stop(self, grace_s: float = 20.0) -> None:
        self._clear_state()
        proc, self.process = self.process, None
        stop_child(proc, grace_s)

    # run state, for `suiqa down` and `suiqa status`: one file per server (role AND port), so a second server of a
    # role in the same $SUIQA_HOME (a test's, `suiqa serve domain` beside a stack) never overwrites or removes the
    # stack's file: with one file per role, `suiqa down` lost track of the stack's domain vLLM and left it running.
    @property
    def state_file(self) -> Path:
        return state_file(self.profile)

    def _write_state(self) -> None:
        assert self.process is not None
        self.state_file.write_text(json.dumps({
            "pid": self.process.pid, "pgid": self.process.pid, "url": self.base_url, "role": self.profile.role,
            "profile": self.profile.name, "log": str(self.log_path)}))

    def _clear_state(self) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            if self.process is None or json.loads(self.state_file.read_text())["pid"] == self.process.pid:
                self.state_file.unlink()  # only this server's own record



"""What a benchmark points at: the domain vLLM tier, the HF baseline, the pipeline API, or any URL.

:func:`open_target` is a context manager that yields a :class:`Target` (base URL, model name, description) and,
when asked, starts the server first and stops it afterwards (the domain vLLM from a serving profile, or the HF
baseline on the same model folder). Benchmark-owned servers use ports 8200-8209.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from suiqa.errors import SuiqaError
from suiqa.net import wait_http_ok

DOMAIN_PORT = 8200
HF_BASELINE_PORT = 8201
PIPELINE_URL = "http://127.0.0.1:8080"
PIPELINE_MODEL = "sui-react"
NAMED_TARGETS = ("domain", "hf-baseline", "pipeline")


@dataclass
class Target:
    kind: str          # domain | hf-baseline | pipeline | url
    base_url: str
    model: str
    started_here: bool = False
    detail: str = ""

    def as_dict(self) -> dict:
        return {"kind": self.kind, "url": self.base_url, "model": self.model, "started_here": self.started_here,
                "detail": self.detail}


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def wait_healthy(url: str, proc: subprocess.Popen | None, timeout_s: float, log: Path | None = None) -> None:
    wait_http_ok(f"{url}/health", timeout_s, 0.5, proc=proc, log=log)


@contextmanager
def hf_baseline_server(model_dir: str, served_name: str, port: int = HF_BASELINE_PORT, device: str = "auto",
                       dtype: str = "auto", log_dir: Path | None = None):
    """Start ``python -m benchmarks.hf_baseline_server`` and yield its base URL; stopped on exit."""
    from suiqa.net import port_in_use, stop_process_group
    from suiqa.paths import logs_dir

    if not (Path(model_dir) / "config.json").is_file():
        raise SuiqaError(f"HF baseline: model folder not found or has no config.json: {model_dir}")
    if port_in_use("127.0.0.1", port):
        raise SuiqaError(f"HF baseline: port {port} is already in use (choose another with --port)")
    log = (log_dir or logs_dir()) / f"hf-baseline-{port}.log"
    cmd = [sys.executable, "-m", "benchmarks.hf_baseline_server", "--model", str(model_dir), "--port", str(port),
           "--served-model-name", served_name, "--device", device, "--dtype", dtype]
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=Path(__file__).resolve().parent.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, 300, log)
        yield url
    finally:
        stop_process_group(proc.pid, grace_s=10)
        proc.wait()


@contextmanager
def open_target(target: str, profile: str = "cpu-tiny", start: bool = False, port: int | None = None,
                model: str | None = None):
    """Yield a :class:`Target`. ``target``: domain | hf-baseline | pipeline | an http(s) URL."""
    if _is_url(target):
        if not model:
            raise SuiqaError("a URL target needs --model (the name the server answers to)")
        yield Target("url", target.rstrip("/"), model)
        return
    if target == "pipeline":
        yield Target("pipeline", PIPELINE_URL, model or PIPELINE_MODEL, detail="Ray Serve pipeline API")
        return
    if target not in NAMED_TARGETS:
        raise SuiqaError(f"unknown target {target!r}: use domain, hf-baseline, pipeline or an http:// URL")

    from serving.config import load_profile

    prof = load_profile(profile, role="domain", port=port or (DOMAIN_PORT if start else None))
    name = model or prof.api_model_name
    if target == "hf-baseline":
        device = "cuda" if prof.device == "gpu" else "cpu"
        with hf_baseline_server(prof.model_path, name, port or HF_BASELINE_PORT, device=device) as url:
            yield Target("hf-baseline", url, name, True, f"HF generate, one at a time, {prof.model_path}")
        return
    if not start:
        yield Target("domain", prof.base_url, name, False, f"running vLLM server (profile {prof.name})")
        return
    from serving.launcher import VLLMServer

    with VLLMServer(prof) as server:
        yield Target("domain", server.base_url, name, True, f"vLLM started from profile {prof.name}")

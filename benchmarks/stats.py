"""Per-step statistics from request records, and the summary.json layout shared by every benchmark.

summary.json::

    {"name": ..., "kind": "online" | "offline", "target": {...}, "config": {...}, "slo": {...},
     "created": ISO time, "steps": [step, ...]}

An online step (one concurrency level)::

    {"users": 8, "duration_s": 30, "requests": 412, "failures": 0, "completed_in_window": 400,
     "req_s": 13.3, "output_tok_s": 1702.1, "goodput_req_s": 12.9, "slo_attainment": 0.97,
     "ttft_ms": {"mean", "p50", "p95", "p99", "max"}, "tpot_ms": {...}, "itl_ms": {...}, "e2e_ms": {...},
     "output_tokens": {...}, "errors": {"message": count}}

An offline step (one pass of the engine benchmark) has ``pass``, ``elapsed_s``, ``req_s``, ``output_tok_s`` and
``total_tok_s``; the summary then adds ``best`` and ``median``. numpy and the standard library only.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PERCENTILES = (50, 95, 99)
LATENCY_METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")


@dataclass(frozen=True)
class SLO:
    """A request is 'good' when it succeeded and met every bound (goodput = good requests per second)."""

    ttft_ms: float = 1000.0
    tpot_ms: float = 100.0
    e2e_ms: float | None = None

    def met_by(self, rec: dict) -> bool:
        if not rec.get("ok"):
            return False
        if rec.get("ttft_ms") is None or rec["ttft_ms"] > self.ttft_ms:
            return False
        if rec.get("tpot_ms") is not None and rec["tpot_ms"] > self.tpot_ms:
            return False
        return self.e2e_ms is None or (rec.get("e2e_ms") or 0) <= self.e2e_ms

    def as_dict(self) -> dict:
        return {"ttft_ms": self.ttft_ms, "tpot_ms": self.tpot_ms, "e2e_ms": self.e2e_ms}


def distribution(values) -> dict | None:
    """mean / p50 / p95 / p99 / max of the values (None when there are none)."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return None
    out = {"mean": float(arr.mean())}
    for p, v in zip(PERCENTILES, np.percentile(arr, PERCENTILES)):
        out[f"p{p}"] = float(v)
    out["max"] = float(arr.max())
    out["n"] = int(arr.size)
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}


def summarize_step(records: list[dict], users: int, t_start: float, duration_s: float, slo: SLO) -> dict:
    """Statistics of one concurrency step.

    Throughput counts the requests that completed inside the measurement window [t_start, t_start+duration_s]
    (Locust's ``-t``); latency percentiles use every successful request, including those that finished while
    the last in-flight requests were drained.
    """
    if duration_s <= 0:
        raise ValueError("duration_s must be positive")
    ok = [r for r in records if r.get("ok")]
    window_end = t_start + duration_s
    in_window = [r for r in ok if r["start"] + (r["e2e_ms"] or 0) / 1000.0 <= window_end]
    good = [r for r in in_window if slo.met_by(r)]
    itl = [v for r in ok for v in r.get("itl_ms") or ()]
    return {
        "users": users,
        "duration_s": duration_s,
        "requests": len(records),
        "failures": len(records) - len(ok),
        "completed_in_window": len(in_window),
        "req_s": round(len(in_window) / duration_s, 4),
        "output_tok_s": round(sum(r["output_tokens"] for r in in_window) / duration_s, 3),
        "goodput_req_s": round(len(good) / duration_s, 4),
        "slo_attainment": round(len(good) / len(in_window), 4) if in_window else 0.0,
        "ttft_ms": distribution(r["ttft_ms"] for r in ok),
        "tpot_ms": distribution(r["tpot_ms"] for r in ok),
        "itl_ms": distribution(itl),
        "e2e_ms": distribution(r["e2e_ms"] for r in ok),
        "output_tokens": distribution(r["output_tokens"] for r in ok),
        "prompt_tokens": distribution(r.get("prompt_tokens") for r in ok),
        "errors": dict(Counter((r.get("error") or "unknown")[:160] for r in records if not r.get("ok"))),
    }


def summarize_passes(passes: list[dict]) -> dict:
    """``best`` (fastest pass) and ``median`` (by elapsed time) of offline passes."""
    if not passes:
        raise ValueError("no passes to summarize")
    ordered = sorted(passes, key=lambda p: p["elapsed_s"])
    return {"best": ordered[0], "median": ordered[(len(ordered) - 1) // 2] if len(ordered) % 2 else
            _mean_pass(ordered[len(ordered) // 2 - 1], ordered[len(ordered) // 2])}


def _mean_pass(a: dict, b: dict) -> dict:
    return {k: (a[k] + b[k]) / 2 if isinstance(a.get(k), (int, float)) and k != "pass" else a[k] for k in a}


def offline_pass(index: int, elapsed_s: float, requests: int, prompt_tokens: int, output_tokens: int) -> dict:
    return {"pass": index, "elapsed_s": round(elapsed_s, 4), "requests": requests,
            "req_s": round(requests / elapsed_s, 4), "output_tok_s": round(output_tokens / elapsed_s, 2),
            "total_tok_s": round((prompt_tokens + output_tokens) / elapsed_s, 2),
            "prompt_tokens": prompt_tokens, "output_tokens": output_tokens}


def new_summary(name: str, kind: str, target: dict, config: dict, slo: SLO | None = None) -> dict:
    return {"name": name, "kind": kind, "target": target, "config": config,
            "slo": slo.as_dict() if slo else None, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "steps": []}


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_summary(path_or_dir: str | Path) -> dict:
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark summary at {path}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if "steps" not in data or "name" not in data:
        raise ValueError(f"{path} is not a benchmark summary (no 'name'/'steps')")
    return data


def read_records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]

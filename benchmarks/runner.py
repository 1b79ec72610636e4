"""Run the Locust user headless, one subprocess per concurrency step, and collect a summary.

    python -m benchmarks.runner --host http://127.0.0.1:8000 --model internlm2-chat-sui --users 1,8,32 \
        --duration 30s --max-tokens 128 --out benchmarks/results/my-run

(``suiqa bench run`` wraps this with targets and server start-up.) Needs only Locust, numpy, matplotlib and the
standard library, so the same command runs on the GPU machine.

Scaling: one gevent process parses a few thousand SSE chunks/s, so ``--processes auto`` (the default) runs one Locust
worker per :data:`USERS_PER_PROCESS` users (capped at half the cores; 1,024 users -> 8 workers on 16 cores): the
H200 campaign's 2-process client capped the pipeline at 3.2 runs/s and recorded nothing at 64 users, while vLLM's
own client got 11.5 runs/s there. A step that recorded no successful request is a FAILED step (``status``), kept
in summary.json with the tail of its Locust log, never a blank row.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.openai_stream import api_path, parse_max_tokens, request_body
from benchmarks.stats import SLO, new_summary, read_records, summarize_step

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
REPO_ROOT = Path(__file__).resolve().parent.parent
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
USERS_PER_PROCESS = 128


def auto_processes(users: int, cpus: int | None = None) -> int:
    """Locust worker processes for ``users`` concurrent users: one per 128 users, at most half the cores."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(-(-users // USERS_PER_PROCESS), cpus // 2))


class BenchError(Exception):
    """A benchmark could not run; the message is one line (the CLI turns it into SuiqaError)."""


def parse_duration(text: str) -> float:
    """``"60s"``, ``"2m"``, ``"90"`` -> seconds."""
    m = _DURATION.match(str(text))
    if not m:
        raise BenchError(f"duration must look like 30s, 2m or 90, got {text!r}")
    value = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    if value <= 0:
        raise BenchError(f"duration must be positive, got {text!r}")
    return value


def parse_users(text: str) -> list[int]:
    try:
        users = [int(u) for u in str(text).split(",") if u.strip()]
    except ValueError:
        raise BenchError(f"--users must be comma-separated integers like 1,8,32, got {text!r}") from None
    if not users or any(u < 1 for u in users):
        raise BenchError(f"--users needs at least one positive integer, got {text!r}")
    return users


@dataclass
class LoadSpec:
    """What every request of a run looks like."""

    host: str
    model: str
    api: str = "chat"
    max_tokens: str = "128"
    ignore_eos: bool = True
    temperature: float = 0.0
    prompts: str | None = None
    seed: int = 0
    unique_prompts: bool = False  # a random tag first in every prompt: no prefix-cache hits between requests
    stop_timeout_s: float = 120.0
    processes: int | None = None  # Locust workers; None = auto_processes(users) for each step
    honour_retry_after: bool = True  # a refused user waits the response's Retry-After (False: retries at once)
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"BENCH_MODEL": self.model, "BENCH_API": self.api, "BENCH_MAX_TOKENS": self.max_tokens,
                    "BENCH_IGNORE_EOS": "1" if self.ignore_eos else "0", "BENCH_TEMPERATURE": str(self.temperature),
                    "BENCH_SEED": str(self.seed), "BENCH_UNIQUE": "1" if self.unique_prompts else "0",
                    "BENCH_RETRY_AFTER": "1" if self.honour_retry_after else "0"})
        if self.prompts:
            env["BENCH_PROMPTS"] = str(self.prompts)
        env.setdefault("PYTHONPATH", str(REPO_ROOT))
        env.update(self.extra_env)
        return env

    def as_config(self) -> dict:
        return {"api": self.api, "model": self.model, "max_tokens": self.max_tokens, "ignore_eos": self.ignore_eos,
                "temperature": self.temperature, "prompts": self.prompts or "benchmarks/data/sui_questions.txt",
                "unique_prompts": self.unique_prompts, "honour_retry_after": self.honour_retry_after}


def check_endpoint(spec: LoadSpec, timeout_s: float = 120.0) -> None:
    """One short streamed request (also a warm-up); raises BenchError with the reason if it fails."""
    import json
    import urllib.error
    import urllib.request

    body = request_body(spec.api, spec.model, "隋朝是谁建立的？", 4, spec.ignore_eos)
    req = urllib.request.Request(spec.host.rstrip("/") + api_path(spec.api), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", "replace")
        raise BenchError(f"{spec.host} answered HTTP {exc.code} to a test request: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BenchError(f"cannot reach {spec.host}: {reason}") from None


def run_step(spec: LoadSpec, users: int, duration_s: float, work_dir: Path, slo: SLO,
             log_path: Path | None = None) -> dict:
    """One Locust run at ``users`` concurrent users for ``duration_s``; returns the step statistics."""
    work_dir.mkdir(parents=True, exist_ok=True)
    records_path, meta_path = work_dir / f"records-u{users}.jsonl", work_dir / f"meta-u{users}.json"
    env = spec.env()
    env.update(BENCH_RECORDS=str(records_path), BENCH_META=str(meta_path))
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
           "-u", str(users), "-r", str(users), "-t", f"{duration_s:g}s", "--host", spec.host,
           "--stop-timeout", f"{spec.stop_timeout_s:g}", "--exit-code-on-error", "0", "--loglevel", "WARNING"]
    processes = spec.processes or auto_processes(users)
    if processes > 1:
        cmd += ["--processes", str(processes)]
    log_path = log_path or work_dir / f"locust-u{users}.log"
    with log_path.open("w", encoding="utf-8") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, check=False,
                              timeout=duration_s + spec.stop_timeout_s + 120)
    import json

    records = [rec for part in sorted(work_dir.glob(f"{records_path.name}*")) for rec in read_records(part)]
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if not meta and not records:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise BenchError(f"locust exited with code {proc.returncode} at {users} users: "
                         f"{' | '.join(tail)[:300]} (log: {log_path})")
    # Records are written as requests finish, so a master that died before writing its meta file still leaves
    # a usable step; its window then starts at the first request.
    t_start = meta.get("t_start") or min(r["start"] for r in records)
    step = summarize_step(records, users, t_start, duration_s, slo)
    step["processes"] = processes
    if meta.get("t_stop"):
        step["wall_s"] = round(meta["t_stop"] - meta["t_start"], 2)
    step["status"] = "ok" if step["requests"] > step["failures"] else "FAILED"
    if proc.returncode != 0 or not meta:
        step["locust_exit"] = proc.returncode
    if step["status"] == "FAILED" or proc.returncode != 0:  # keep the evidence, never a blank row
        step["locust_log_tail"] = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
    return step


def run_sweep(name: str, spec: LoadSpec, users: list[int], duration_s: float, out_dir: Path, slo: SLO,
              target: dict | None = None, keep_records: bool = False, progress=None) -> dict:
    """Every step in turn; writes summary.json, report.md and plots into ``out_dir``; returns the summary."""
    from benchmarks.report import write_report

    check_endpoint(spec)
    summary = new_summary(name, "online", target or {"url": spec.host}, {**spec.as_config(),
                          "users": users, "duration_s": duration_s}, slo)
    summary["command"] = " ".join(shlex.quote(a) for a in sys.argv)
    raw_dir = out_dir / "raw" if keep_records else Path(tempfile.mkdtemp(prefix="suiqa-bench-"))
    for u in users:
        step = run_step(spec, u, duration_s, raw_dir, slo)
        summary["steps"].append(step)
        if progress:
            progress(step)
        write_report(summary, out_dir)  # partial results survive an interrupted sweep
    return summary


def step_line(step: dict) -> str:
    def p(metric: str, q: str) -> str:
        d = step.get(metric)
        return f"{d[q]:.1f}" if d else "-"

    if step.get("status") == "FAILED":
        tail = " | ".join((step.get("locust_log_tail") or [])[-3:])[:300]
        return (f"users={step['users']:>4}  FAILED: {step['requests']} requests, {step['failures']} failed "
                f"{step.get('errors') or ''}  log: {tail}")
    return (f"users={step['users']:>4}  req/s={step['req_s']:8.2f}  out tok/s={step['output_tok_s']:9.1f}  "
            f"TTFT p50/p99={p('ttft_ms', 'p50')}/{p('ttft_ms', 'p99')} ms  "
            f"TPOT p50/p99={p('tpot_ms', 'p50')}/{p('tpot_ms', 'p99')} ms  "
            f"E2E p50/p99={p('e2e_ms', 'p50')}/{p('e2e_ms', 'p99')} ms  fail={step['failures']}/{step['requests']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", default=None)
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results/<name>)")
    ap.add_argument("--users", default="1,8,32")
    ap.add_argument("--duration", default="30s")
    ap.add_argument("--api", choices=["chat", "completions"], default="chat")
    ap.add_argument("--max-tokens", default="128", help="N or MIN:MAX")
    ap.add_argument("--no-ignore-eos", action="store_true")
    ap.add_argument("--prompts", default=None)
    ap.add_argument("--slo-ttft-ms", type=float, default=1000.0)
    ap.add_argument("--slo-tpot-ms", type=float, default=100.0)
    ap.add_argument("--stop-timeout", type=float, default=120.0)
    ap.add_argument("--unique-prompts", action="store_true",
                    help="start every prompt with a random tag (no prefix-cache hits, like vllm bench serve random)")
    ap.add_argument("--keep-records", action="store_true", help="keep per-request JSONL under <out>/raw")
    ap.add_argument("--processes", default="auto",
                    help="Locust worker processes: N, or auto = one per 128 users, at most half the cores")
    args = ap.parse_args(argv)
    try:
        parse_max_tokens(args.max_tokens)
        name = args.name or time.strftime("run-%Y%m%d-%H%M%S")
        out = Path(args.out) if args.out else REPO_ROOT / "benchmarks" / "results" / name
        spec = LoadSpec(host=args.host.rstrip("/"), model=args.model, api=args.api, max_tokens=args.max_tokens,
                        ignore_eos=not args.no_ignore_eos, prompts=args.prompts, stop_timeout_s=args.stop_timeout,
                        processes=None if args.processes == "auto" else int(args.processes),
                        unique_prompts=args.unique_prompts)
        run_sweep(name, spec, parse_users(args.users), parse_duration(args.duration), out,
                  SLO(args.slo_ttft_ms, args.slo_tpot_ms), keep_records=args.keep_records,
                  progress=lambda st: print(step_line(st), flush=True))
    except (BenchError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

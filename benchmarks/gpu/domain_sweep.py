"""Domain tier on the GPU: the API-server sweep at saturation, and the two clients side by side.

    python -m benchmarks.gpu.domain_sweep --model /tmp/models/domain-internlm2 --counts 1,2 --passes 3 \
        --compare-at 2 --out benchmarks/results/h200/throughput/domain

For each N in ``--counts`` it starts the shipped profile ``gpu-internlm2-1_8b`` (so the InternLM2 folder is
served through its cached Llama-layout conversion, serving/checkpoint.py) with ``api_server_count=N`` through
:class:`serving.launcher.VLLMServer`, runs ``--passes`` passes of vLLM's client at the issue's saturation point
(1000 prompts x 256 random tokens in / 256 out, ignore_eos, 1,024 concurrent, 4 client processes, new prompts
every pass), and stops it. At the N named by ``--compare-at`` it also runs the Locust runner (unique prompts,
256 users) and vLLM's client at the same concurrency, and writes their agreement (benchmarks.gpu.vllm_bench).
Everything lands in ``--out`` as JSON; the report is built from it (benchmarks.gpu.throughput_report).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def gpu_free(timeout_s: float = 60.0) -> None:
    """Wait until no process holds GPU memory (the last server's engine core has exited)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"], check=False,
                                 capture_output=True, text=True).stdout.strip()
        except FileNotFoundError:
            return
        if not out:
            return
        time.sleep(1)
    print(f"warning: GPU still in use after {timeout_s:.0f} s: {out}", flush=True)


def bench(name: str, out: Path, base_url: str, model: str, tokenizer: str, concurrency: int, num_prompts: int,
          clients: int, seed: int, extra: list[str] | None = None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.gpu.vllm_bench", "run", "--base-url", base_url, "--model", model,
           "--tokenizer", tokenizer, "--concurrency", str(concurrency), "--num-prompts", str(num_prompts),
           "--clients", str(clients), "--seed", str(seed), "--name", name, "--out", str(out), *(extra or [])]
    subprocess.run(cmd, cwd=REPO, check=False)
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {"name": name, "status": "FAILED"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--profile", default="gpu-internlm2-1_8b")
    ap.add_argument("--counts", default="1,2,4,8")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=1024)
    ap.add_argument("--num-prompts", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--compare-at", default="", help="N values at which both clients run at --compare-users")
    ap.add_argument("--compare-users", type=int, default=256)
    ap.add_argument("--compare-duration", default="20s")
    ap.add_argument("--override", action="append", default=[], metavar="FIELD=VALUE",
                    help="extra ServingProfile field (JSON value), e.g. kv_cache_dtype=\"fp8\"")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    def _stop(*_):  # `timeout` sends SIGTERM: leave through the finally blocks, which stop the server. The first
        raise KeyboardInterrupt  # lease lost its pipeline step to an orphaned server (it held 85% of the GPU).

    signal.signal(signal.SIGTERM, _stop)

    from benchmarks.runner import LoadSpec, run_step
    from benchmarks.stats import SLO, new_summary, write_json
    from serving.config import load_profile
    from serving.launcher import VLLMServer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = {}
    for item in args.override:
        key, _, raw = item.partition("=")
        overrides[key] = json.loads(raw)
    compare_at = {int(n) for n in args.compare_at.split(",") if n}
    for n in (int(c) for c in args.counts.split(",")):
        gpu_free()
        tag = f"n{n}{args.tag}"
        prof = load_profile(args.profile, role="domain", model=args.model, api_server_count=n, host="127.0.0.1",
                            **overrides)
        started = time.monotonic()
        server = VLLMServer(prof)
        try:
            server.start()
            server.wait_ready()
        except Exception as exc:  # noqa: BLE001 - a failed configuration is a result too
            print(f"{tag}: server FAILED: {exc}", flush=True)
            write_json(out / f"{tag}-server.json", {"status": "FAILED", "error": str(exc)})
            server.stop()
            continue
        start_s = round(time.monotonic() - started, 1)
        print(f"{tag}: ready in {start_s} s: {' '.join(server.profile.command())}", flush=True)
        write_json(out / f"{tag}-server.json", {"status": "ok", "start_s": start_s,
                                                "command": server.profile.command(), "served": prof.model_path})
        name, tok = prof.api_model_name, server.profile.model_path
        try:
            for p in range(1, args.passes + 1):
                bench(f"{tag}-sat-p{p}", out, prof.base_url, name, tok, args.concurrency, args.num_prompts,
                      args.clients, seed=100 * n + p)
            if n in compare_at:
                u = args.compare_users
                spec = LoadSpec(host=prof.base_url, model=name, api="completions", max_tokens="256",
                                prompts="/tmp/prompts256.txt", unique_prompts=True, stop_timeout_s=60)
                from benchmarks.runner import parse_duration

                step = run_step(spec, u, parse_duration(args.compare_duration), out / f"{tag}-locust-raw",
                                SLO(1000, 50))
                summary = new_summary(f"{tag}-locust-u{u}", "online", {"url": prof.base_url}, spec.as_config())
                summary["steps"].append(step)
                write_json(out / f"{tag}-locust-u{u}.json", summary)
                print(f"{tag} locust u={u}: req/s={step['req_s']} tok/s={step['output_tok_s']} "
                      f"TTFT p50={(step.get('ttft_ms') or {}).get('p50')} status={step['status']}", flush=True)
                bench(f"{tag}-vllm-c{u}", out, prof.base_url, name, tok, u, 4 * u, 2, seed=7 * n)
                subprocess.run([sys.executable, "-m", "benchmarks.gpu.vllm_bench", "compare", "--vllm",
                                str(out / f"{tag}-vllm-c{u}.json"), "--locust", str(out / f"{tag}-locust-u{u}.json"),
                                "--users", str(u), "--out", str(out / f"{tag}-agreement-u{u}.json")],
                               cwd=REPO, check=False)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

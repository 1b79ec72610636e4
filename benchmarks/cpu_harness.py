"""The Serve tier's CPU per agent run, on CPU, against a stand-in upstream: the number that predicts the GPU plateau.

    python -m benchmarks.cpu_harness --users 8,32 --duration 30s --replicas 1 --out benchmarks/results/cpu_harness
    make bench-harness

Issue 24: on the GPU the pipeline plateaued at ~22 runs/s while the GPU and most host cores idled. Every run costs
the Serve tier a fixed amount of CPU — Ray's HTTP proxy (one process per node, whatever the replicas), the replica
(the ingress, the ReAct loop, the two LLM clients reading the streamed turns), the answer's SSE back through the
proxy — and a process kind that is ONE process per node caps the node at ``1000 / its CPU ms per run`` runs/s,
however idle the rest of the machine is. This harness measures those milliseconds without a GPU: the Serve app of
the ``gpu-bench`` workload (``deployments/profiles/api-gpu-bench.yaml``: every LLM call a fixed 128 tokens, draft +
forced search + 3 agent turns = 512 generated tokens per run), both tiers replaced by ONE stand-in vLLM server
(benchmarks/standin_vllm.py: vLLM's wire format, a set pace, ~no CPU of its own), the project's Locust runner as the
client, and benchmarks/timeline.py reading every process's CPU seconds before and after each step.

Prediction per process kind: ``cores it may use / CPU seconds per run`` (the proxy: 1 core per node; the replicas:
one core each; vLLM's front ends: ``api_server_count`` cores per tier, measured separately). The smallest is the
plateau the Serve tier allows on any GPU. Written to ``<out>/summary.json``, ``report.md`` and ``cpu_per_run.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("internlm2-chat-sui", "qwen-agent")


def _wait(url: str, timeout_s: float) -> None:
    from suiqa.net import wait_http_ok

    wait_http_ok(url, timeout_s)


def start_standin(port: int, ttft_ms: float, itl_ms: float, stream_interval: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "benchmarks.standin_vllm", "--port", str(port), "--ttft-ms", str(ttft_ms),
           "--itl-ms", str(itl_ms), "--stream-interval", str(stream_interval)]
    for m in MODELS:
        cmd += ["--model", m]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    _wait(f"http://127.0.0.1:{port}/health", 60)
    return proc


def harness_settings(port: int, replicas: int, in_flight: int, api: str):
    """api-gpu-bench's ApiSettings with both tiers at the stand-in and a fixed number of replicas."""
    from benchmarks.gpu.pipeline_bench import _deep_merge
    from deployments.config import PROFILES_DIR, ApiSettings

    base = f"http://127.0.0.1:{port}/v1"
    settings = ApiSettings.load(PROFILES_DIR / "api-gpu-bench.yaml", profile="cpu-harness", tiny_models=False,
                                agent={"domain_llm": {"base_url": base, "model": MODELS[0]},
                                       "agent_llm": {"base_url": base, "model": MODELS[1]}})
    extra = {"agent_deployment": {"autoscaling": None, "num_replicas": replicas, "num_cpus": 0},
             "admission": {"max_in_flight": in_flight, "max_queue": in_flight}}
    return ApiSettings.model_validate(_deep_merge(_deep_merge(settings.model_dump(), extra), json.loads(api or "{}")))


def predict(cpu_rows: list[dict], replicas: int) -> list[dict]:
    """The runs/s each process kind allows: its cores (1 per proxy, 1 per replica) over its CPU seconds per run."""
    cores = {"serve proxy": 1, "serve replica": replicas}
    out = []
    for row in cpu_rows:
        if row["kind"] in cores and row["cpu_ms_per_run"]:
            out.append({"kind": row["kind"], "cores": cores[row["kind"]],
                        "max_runs_s": round(1000 * cores[row["kind"]] / row["cpu_ms_per_run"], 1)})
    return out


def write_report(summary: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    lines = [f"# CPU harness: the Serve tier's CPU per agent run ({summary['config']['label']})", "",
             f"`{summary['command']}`", "",
             "| users | pass | runs/s | E2E p50 / p99 s | failures | "
             + " | ".join(f"{k} ms/run" for k in summary["kinds"]) + " | plateau it predicts (runs/s) |",
             "|---|---|---|---|---|" + "---|" * len(summary["kinds"]) + "---|"]
    for step in summary["steps"]:
        cpu = {r["kind"]: r for r in step["probe"]["cpu"]}
        e2e = step.get("e2e_ms") or {}
        pred = ", ".join(f"{p['kind']} {p['max_runs_s']}" for p in step["prediction"])
        lines.append(f"| {step['users']} | {step.get('pass', 1)} | {step['req_s']:.2f} | "
                     f"{e2e.get('p50', 0) / 1000:.2f} / "
                     f"{e2e.get('p99', 0) / 1000:.2f} | {step['failures']}/{step['requests']} | "
                     + " | ".join(str((cpu.get(k) or {}).get("cpu_ms_per_run", "-")) for k in summary["kinds"])
                     + f" | {pred} |")
    lines += ["", "CPU ms per run = a process kind's CPU seconds over the step (every process, /proc) / the runs "
              "completed; the load client and the stand-in share the machine and are listed for completeness.", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(8, 4))
    steps = summary["steps"]
    bottom = [0.0] * len(steps)
    for kind in summary["kinds"]:
        vals = [next((r["cpu_ms_per_run"] or 0 for r in s["probe"]["cpu"] if r["kind"] == kind), 0) for s in steps]
        ax.bar([f"{s['users']}" + (f" p{s['pass']}" if s.get("pass", 1) > 1 else "") for s in steps], vals,
               bottom=bottom, label=kind)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("CPU ms per agent run")
    ax.set_title(f"CPU per agent run by process kind ({summary['config']['label']})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "cpu_per_run.png", dpi=110)


def main(argv: list[str] | None = None) -> int:
    from suiqa.ray_local import RAY_LOCAL_ENV

    os.environ.update(RAY_LOCAL_ENV)  # before Ray is imported (benchmarks/gpu/pipeline_bench.py says why)
    import secrets

    key = os.environ.setdefault("BENCH_API_KEY", secrets.token_hex(16))
    os.environ.setdefault("SUIQA_API_API_KEYS", f"bench:{key}")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", default="8,32")
    ap.add_argument("--duration", default="30s")
    ap.add_argument("--passes", type=int, default=1, help="every load this many times on one deployment")
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--in-flight", type=int, default=256, help="admission.max_in_flight (and max_queue) per replica")
    ap.add_argument("--ttft-ms", type=float, default=30.0)
    ap.add_argument("--itl-ms", type=float, default=5.0)
    ap.add_argument("--stream-interval", type=int, default=8)
    ap.add_argument("--port", type=int, default=8300)
    ap.add_argument("--api", default="", help="JSON deep-merged into the ApiSettings")
    ap.add_argument("--ray-env", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--label", default="as shipped")
    ap.add_argument("--out", default="benchmarks/results/cpu_harness")
    args = ap.parse_args(argv)

    from benchmarks.gpu.lease_table import probe_name, raw_name
    from benchmarks.gpu.pipeline_bench import _parse_assign, deploy_app, start_ray
    from benchmarks.runner import LoadSpec, parse_duration, parse_users, run_step, step_line
    from benchmarks.stats import SLO
    from benchmarks.timeline import StepProbe, brief, dump

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for raw in out.glob("raw*"):  # the runner reads every records file there: none of a past run
        shutil.rmtree(raw, ignore_errors=True)
    os.environ.update({k: str(v) for k, v in _parse_assign(args.ray_env).items()})
    settings = harness_settings(args.port, args.replicas, args.in_flight, args.api)
    subprocess.run(["ray", "stop", "--force"], capture_output=True, check=False)
    standin = start_standin(args.port, args.ttft_ms, args.itl_ms, args.stream_interval, out / "standin.log")
    stack = {"ray_port": 6390, "ray_num_cpus": max(4, args.replicas + 2), "ray_metrics_export_port": 8090}
    summary = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if argv is None else " ".join(argv),
               "config": {"label": args.label, "replicas": args.replicas, "in_flight": args.in_flight,
                          "ttft_ms": args.ttft_ms, "itl_ms": args.itl_ms, "stream_interval": args.stream_interval,
                          "api": json.loads(args.api or "{}"), "ray_env": args.ray_env,
                          "deployment": settings.deployment_options(), "cpus": os.cpu_count()},
               "steps": []}
    try:
        from react_tier.knowledge import KnowledgeBase

        KnowledgeBase.load(settings.agent.knowledge)  # built once, so the replicas find it cached
        address = start_ray(stack)
        deploy_app(address, settings)
        api = f"http://127.0.0.1:{settings.port}"
        _wait(f"{api}/ready", 300)
        spec = LoadSpec(host=api, model=settings.served_model_name, api="chat", max_tokens="128", stop_timeout_s=30,
                        processes=1)
        endpoints = {"ray": f"http://127.0.0.1:{stack['ray_metrics_export_port']}/metrics",
                     "sui": f"http://127.0.0.1:{settings.metrics_port}/metrics",
                     "upstream": f"http://127.0.0.1:{args.port}/metrics"}
        for run_pass, users in [(p, u) for p in range(1, args.passes + 1) for u in parse_users(args.users)]:
            with StepProbe(endpoints, {}, {"domain": ("upstream", MODELS[0]),
                                                          "agent": ("upstream", MODELS[1])}) as probe:
                step = run_step(spec, users, parse_duration(args.duration), out / raw_name(run_pass),
                                SLO(10000.0, 1000.0))
            found = probe.result(step["requests"] - step["failures"])
            dump(out / probe_name(users, run_pass), found)
            step["pass"] = run_pass
            step["probe"] = {k: v for k, v in found.items() if k != "series"}
            step["prediction"] = predict(found["cpu"], args.replicas)
            summary["steps"].append(step)
            print(step_line(step), flush=True)
            print(brief(found), flush=True)
            print("prediction:", step["prediction"], flush=True)
    finally:
        subprocess.run(["ray", "stop", "--force"], capture_output=True, check=False)
        standin.terminate()
        standin.wait(timeout=10)
    kinds = ["serve proxy", "serve replica", "ray system", "serve controller", "load client", "stand-in upstream"]
    summary["kinds"] = [k for k in kinds if any(r["kind"] == k for s in summary["steps"] for r in s["probe"]["cpu"])]
    write_report(summary, out)
    print(f"wrote {out}/report.md", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

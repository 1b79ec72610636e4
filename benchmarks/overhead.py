"""Agent-tier orchestration overhead: the pipeline (Ray Serve app) against an instant LLM, next to a trivial echo.

For each variant (``echo``, ``pipeline``) and replica count (1, 2), in ONE run on one local Ray instance:
``serve.run`` the app on the Serve proxy port, sweep the Locust user over the concurrency steps, delete the app.
Both LLM tiers of the pipeline point at :mod:`benchmarks.fixtures.instant_openai`, so what remains is the
orchestration (HTTP proxy, routing, ReAct loop, prompt building, parsing). The report puts E2E p50/p99 and req/s
side by side, with the pipeline's overhead over the echo at the same users and replicas (goal from the issue:
≤ 5 ms p50, ≤ 15 ms p99 added, ≥ 50% of the echo's req/s).

The measurement itself is :func:`measure_app` (any base URL); the only pipeline-specific part is
:func:`pipeline_app`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.report import write_comparison
from benchmarks.runner import BenchError, LoadSpec, check_endpoint, run_step
from benchmarks.stats import SLO, new_summary
from benchmarks.targets import wait_healthy

SERVE_MODEL = "sui-react"
QUESTION_MAX_TOKENS = "64"


def pipeline_app(num_replicas: int, llm_base_url: str):
    """The pipeline as a bound Serve application whose agent AND domain LLMs are the instant responder.

    Everything else is the production configuration (draft first, the knowledge base loaded in each replica, the
    ReAct loop, parsing, streaming), so the difference to the echo is the orchestration alone.
    """
    from deployments.app import build_app
    from deployments.config import AgentDeploymentSettings, ApiSettings

    endpoint = {"base_url": f"{llm_base_url}/v1", "model": "instant", "max_retries": 0}
    settings = ApiSettings(
        served_model_name=SERVE_MODEL,
        agent_deployment=AgentDeploymentSettings(autoscaling=None, num_replicas=num_replicas),
        agent={"agent_llm": endpoint, "domain_llm": endpoint},
    )
    return build_app(settings)


def echo_app(num_replicas: int, llm_base_url: str):
    from benchmarks.fixtures.serve_echo import build_echo_app

    return build_echo_app(num_replicas)


APPS = {"echo": echo_app, "pipeline": pipeline_app}


def measure_app(base_url: str, name: str, users: list[int], duration_s: float, work_dir: Path,
                slo: SLO, ignore_eos: bool = False) -> dict:
    """Locust sweep against any OpenAI-compatible base URL (model ``sui-react``); returns a summary."""
    spec = LoadSpec(host=base_url, model=SERVE_MODEL, max_tokens=QUESTION_MAX_TOKENS, ignore_eos=ignore_eos,
                    stop_timeout_s=30)
    check_endpoint(spec, timeout_s=60)
    summary = new_summary(name, "online", {"kind": "serve", "url": base_url}, {**spec.as_config(),
                          "users": users, "duration_s": duration_s}, slo)
    for u in users:
        summary["steps"].append(run_step(spec, u, duration_s, work_dir / name, slo))
    return summary


def overhead_table(summaries: dict[str, dict]) -> list[str]:
    """Rows: pipeline vs echo at the same replicas and users (E2E p50/p99 added, req/s kept)."""
    head = ("| replicas | users | echo E2E p50 / p99 ms | pipeline E2E p50 / p99 ms | added p50 / p99 ms | "
            "echo req/s | pipeline req/s | kept |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for key, pipe in summaries.items():
        if not key.startswith("pipeline-"):
            continue
        echo = summaries.get(key.replace("pipeline-", "echo-"))
        if echo is None:
            continue
        for ps, es in zip(pipe["steps"], echo["steps"]):
            if not (ps.get("e2e_ms") and es.get("e2e_ms")):
                continue
            pe, ee = ps["e2e_ms"], es["e2e_ms"]
            kept = ps["req_s"] / es["req_s"] if es["req_s"] else 0.0
            lines.append(f"| {key.split('-', 1)[1]} | {ps['users']} | {ee['p50']:.1f} / {ee['p99']:.1f} | "
                         f"{pe['p50']:.1f} / {pe['p99']:.1f} | {pe['p50'] - ee['p50']:+.1f} / "
                         f"{pe['p99'] - ee['p99']:+.1f} | {es['req_s']:.1f} | {ps['req_s']:.1f} | {100 * kept:.0f}% |")
    return lines


def run_overhead(users: list[int], duration_s: float, replicas: list[int], variants: list[str], serve_port: int,
                 instant_port: int, out_dir: Path, echo=print) -> Path:
    """Every variant x replica count in one Ray instance; writes the comparison report; returns report.md."""
    unknown = set(variants) - set(APPS)
    if unknown:
        raise BenchError(f"unknown variant(s) {sorted(unknown)}; choose from {sorted(APPS)}")
    from suiqa.ray_local import RAY_LOCAL_ENV

    os.environ.update(RAY_LOCAL_ENV)  # before Ray is imported: it reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER at import
    import ray
    from ray import serve

    from suiqa.net import port_in_use, stop_process_group

    for port in (serve_port, instant_port):
        if port_in_use("127.0.0.1", port):
            raise BenchError(f"port {port} is already in use")
    slo = SLO(ttft_ms=1000, tpot_ms=1000)
    work_dir = Path(tempfile.mkdtemp(prefix="suiqa-overhead-"))
    instant_url = f"http://127.0.0.1:{instant_port}"
    instant = subprocess.Popen([sys.executable, "-m", "benchmarks.fixtures.instant_openai", "--port",
                                str(instant_port), "--model-name", SERVE_MODEL], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               cwd=Path(__file__).resolve().parent.parent)
    summaries: dict[str, dict] = {}
    notes: list[str] = []
    try:
        wait_healthy(instant_url, instant, 60)
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": serve_port})
        base_url = f"http://127.0.0.1:{serve_port}"
        for variant in variants:
            for n in replicas:
                key = f"{variant}-{n}"
                try:
                    app = APPS[variant](n, instant_url)
                except Exception as exc:  # noqa: BLE001 - the pipeline may not be wired yet: say so, keep going
                    notes.append(f"- {key}: not run, building the app failed: {type(exc).__name__}: {exc}")
                    echo(notes[-1])
                    continue
                serve.run(app, name=key, route_prefix="/", blocking=False)
                try:
                    try:
                        summaries[key] = measure_app(base_url, key, users, duration_s, work_dir, slo)
                    except BenchError as exc:
                        notes.append(f"- {key}: not measured: {exc}")
                        echo(notes[-1])
                        continue
                    for st in summaries[key]["steps"]:
                        e = st.get("e2e_ms") or {}
                        echo(f"{key:12s} users={st['users']:>3} req/s={st['req_s']:8.1f} "
                             f"E2E p50={e.get('p50', 0):.1f} p99={e.get('p99', 0):.1f} ms "
                             f"fail={st['failures']}/{st['requests']}")
                finally:
                    serve.delete(key)
    finally:
        try:
            serve.shutdown()
        except Exception as exc:  # noqa: BLE001 - best effort: ray.shutdown() below ends it anyway
            echo(f"serve.shutdown failed: {exc}")
        if ray.is_initialized():
            ray.shutdown()
        stop_process_group(instant.pid, grace_s=5)
        instant.wait()
    if not summaries:
        raise BenchError("no variant could be measured: " + " ".join(notes))
    what = ("Pipeline (both LLM tiers = the instant responder fixture) vs a trivial Ray Serve echo, same run, "
            "same Locust user (streamed chat requests, closed loop).")
    intro = [what, "", "## Overhead over the echo", "",
             *overhead_table(summaries), "", *notes, ""]
    return write_comparison(list(summaries.values()), out_dir, "Agent-tier overhead", intro)

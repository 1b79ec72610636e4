"""The pipeline (`gpu-bench` stack) on the GPU: keep the two vLLM tiers up, and measure Ray Serve variants on them.

    python -m benchmarks.gpu.pipeline_bench llm-up --stack gpu-bench --domain-model DIR --agent-model DIR \
        [--domain FIELD=JSON ...] [--agent FIELD=JSON ...]
    python -m benchmarks.gpu.pipeline_bench variant --stack gpu-bench --name base --users 1,32,256,1024 \
        --duration 15s [--api '{"agent_deployment": {...}}'] [--ray-env KEY=VALUE ...] [--compare-at 32] \
        [--profile-at 256] [--soak SECONDS:CLIENTS:DIR ...] --out DIR
    python -m benchmarks.gpu.pipeline_bench llm-down

``llm-up`` starts the stack's domain and agent servers (serving profiles + overrides) one after the other (vLLM's
memory profiling assumes no other process allocates meanwhile) in their own sessions, so they outlive the device
call; ``variant`` then starts a Ray head and deploys the Serve app with the variant's ApiSettings (the stack's
api_config + ``--api`` deep-merged + the LLM endpoints), runs the Locust runner at each concurrency (fixed lengths:
the gpu-bench api config sends ``ignore_eos`` and fixed ``max_tokens`` on every LLM call), reads both tiers'
prefix-cache counters around each step, optionally runs vLLM's client for the agreement check and samples the Ray
workers (benchmarks/gpu/sampler) plus every process's CPU% during one step, optionally holds soaks on the same
deployment (benchmarks/soak/run.py: errors by type, latency over time, 429 and /health latency, RSS and CPU per
process), and stops Ray (Ray does not outlive a device call: one call deploys, measures and stops it). A Ray
restart is ~20 s, a vLLM restart ~90 s, which is why the variants share the vLLM servers.

The stack profile (``stackctl/profiles/<name>.yaml`` or a path) is read as data: benchmarks sit below stackctl in
the import graph (tests/unit/test_layering.py), so the few steps of `suiqa up` needed here (serving profiles,
ApiSettings with the endpoints, a loopback Ray head, ``serve.run``) are done with the layers below.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.gpu.lease_table import probe_name, raw_name
from suiqa.errors import SuiqaError
from suiqa.net import wait_http_ok

REPO = Path(__file__).resolve().parents[2]
SAMPLER = Path(__file__).with_name("sampler")


def _parse_assign(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"expected FIELD=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _deep_merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(
            merged.get(key), dict) else value
    return merged


STACK_DIR = REPO / "stackctl" / "profiles"


def load_stack(name_or_path: str) -> dict:
    """The stack profile's fields (a YAML mapping), with `suiqa up`'s defaults for the ones it leaves out."""
    import yaml

    from suiqa.settings import resolve_profile

    data = yaml.safe_load(resolve_profile(name_or_path, STACK_DIR, "stack").read_text(encoding="utf-8")) or {}
    return {"name": "custom", "domain_profile": "cpu-tiny", "agent_profile": "cpu-tiny-agent", "domain_overrides": {},
            "agent_overrides": {}, "ray_port": 6390, "ray_num_cpus": 4, "ray_metrics_export_port": 8090,
            "api_config": None, **data}


def serving_profiles(stack: dict) -> dict:
    from serving.config import load_profile

    domain = load_profile(stack["domain_profile"], role="domain", **stack["domain_overrides"])
    if stack["agent_profile"] is None:  # one server plays both roles
        agent_name = load_profile("cpu-tiny-agent", role="agent").api_model_name
        return {"domain": domain.model_copy(update={"served_model_name": [*domain.served_model_name, agent_name]})}
    return {"domain": domain, "agent": load_profile(stack["agent_profile"], role="agent", **stack["agent_overrides"])}


def api_settings(stack: dict, profiles: dict):
    from deployments.config import PROFILES_DIR, ApiSettings
    from suiqa.settings import resolve_profile

    domain, agent = profiles["domain"], profiles.get("agent")
    endpoints = {"domain_llm": {"base_url": domain.base_url + "/v1", "model": domain.api_model_name},
                 "agent_llm": {"base_url": (agent or domain).base_url + "/v1",
                               "model": agent.api_model_name if agent else domain.served_model_name[-1]}}
    api_yaml = resolve_profile(stack["api_config"], PROFILES_DIR, "API") if stack["api_config"] else None
    return ApiSettings.load(api_yaml, agent=endpoints, profile=stack["name"], tiny_models=False)


def _ray_env() -> dict:
    from deployments.middleware import PROXY_ENV
    from suiqa.ray_local import ray_head_env

    return ray_head_env(PROXY_ENV)  # the Serve proxy runs the front door (a variant's --ray-env may set it empty)


def start_ray(stack: dict) -> str:
    cmd = ["ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={stack['ray_port']}",
           f"--num-cpus={stack['ray_num_cpus']}", f"--metrics-export-port={stack['ray_metrics_export_port']}",
           "--include-dashboard=false", "--disable-usage-stats"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_ray_env(), timeout=120, check=False)
    if out.returncode != 0:
        raise SystemExit(f"`ray start` failed: {(out.stderr or out.stdout).strip()[-300:]}")
    return f"127.0.0.1:{stack['ray_port']}"


def deploy_app(address: str, settings) -> None:
    import logging
    import shutil

    import ray
    from ray import serve

    from deployments.app import build_app
    from suiqa.paths import run_dir

    metrics_dir = run_dir().parent / "sui-metrics"  # the replicas' sui_* series (one node exporter), fresh
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "SUIQA_HOME": str(run_dir().parent),
                                       "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}})
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(build_app(settings), name=settings.app_name, route_prefix=settings.route_prefix, blocking=False)
    finally:
        ray.shutdown()


def wait_ready(url: str, timeout_s: float) -> None:
    try:
        wait_http_ok(url, timeout_s)
    except SuiqaError as exc:
        raise SystemExit(str(exc)) from None


def _state_file() -> Path:
    """Where llm-up records the overrides and agent replicas it started the servers with."""
    return Path(os.environ.get("SUIQA_HOME", "/tmp/suiqa")) / "pipeline_bench.json"


def _stack_and_profiles(args):
    """The stack, and its serving profiles as llm-up started them: the agent tier's replicas each a profile."""
    stack = load_stack(args.stack)
    state = _state_file()
    replicas = 1
    if state.is_file():  # the overrides llm-up used, so every variant talks to the same servers
        saved = json.loads(state.read_text())
        stack.update(domain_overrides=saved["domain"], agent_overrides=saved["agent"])
        replicas = saved.get("agent_replicas", 1)
    return stack, _with_agent_replicas(serving_profiles(stack), replicas)


def llm_up(args) -> int:
    from serving.launcher import stop_vllm_servers

    state = _state_file()
    if args.only == "agent":  # a new agent tier beside the running domain tier: ~90 s of device time less per change
        if not state.is_file():
            raise SystemExit("llm-up --only agent needs a domain tier that llm-up started (no state file)")
        subprocess.run(["ray", "stop", "--force"], capture_output=True, check=False)
        print("stopped", [f"vllm {info['role']} {info['url']}" for info in stop_vllm_servers("agent")], flush=True)
        time.sleep(5)  # their GPU memory is given back a moment after the processes end
        return _start(args, state, keep_domain=json.loads(state.read_text())["domain"])
    try:
        apps = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory",
                               "--format=csv,noheader"], capture_output=True, text=True, check=False).stdout
        # under MPS the daemon's server process holds a context: not a leftover server
        busy = "; ".join(line for line in apps.splitlines() if line.strip() and "mps-server" not in line)
    except FileNotFoundError:  # no NVIDIA driver: a CPU stack
        busy = ""
    if busy:  # a leftover server would take the GPU memory the new ones ask for (and answer their /health)
        raise SystemExit(f"the GPU is in use by {busy!r}: stop those processes first")
    return _start(args, state, keep_domain=None)


def _start(args, state: Path, keep_domain: dict | None) -> int:
    """Start the servers of ``args`` (all of them, or with ``keep_domain`` only the agent tier: the domain tier runs
    with those overrides) and record every override in ``state`` for the variants."""
    from serving.launcher import VLLMServer

    stack = load_stack(args.stack)
    domain = keep_domain or {**stack["domain_overrides"], "model": args.domain_model, **_parse_assign(args.domain)}
    agent = {**stack["agent_overrides"], "model": args.agent_model, **_parse_assign(args.agent)}
    stack.update(domain_overrides=domain, agent_overrides=agent)
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"domain": domain, "agent": agent, "agent_replicas": args.agent_replicas}))
    profiles = _with_agent_replicas(serving_profiles(stack), args.agent_replicas)
    for role, prof in profiles.items():
        if keep_domain is not None and role == "domain":
            continue
        t = time.monotonic()
        server = VLLMServer(prof).start()
        server.wait_ready()
        print(f"{role} ready in {time.monotonic() - t:.0f} s: {' '.join(server.profile.command())}", flush=True)
    return 0


def _with_agent_replicas(profiles: dict, count: int) -> dict:
    """The agent tier as ``count`` vLLM servers on one GPU (issue 24: one engine core's step loop is the bound),
    on the agent profile's port + 1, + 2, ...; the variant lists them as the tier's ``replicas`` (run-affine)."""
    agent = profiles.get("agent")
    extra = {f"agent{i + 1}": agent.model_copy(update={"port": agent.port + i}) for i in range(1, count)} if agent \
        else {}
    return {**profiles, **extra}


def llm_down(args) -> int:
    """Stop Ray and the vLLM servers llm-up started (their process groups, from the launcher's state files)."""
    from serving.launcher import stop_vllm_servers

    subprocess.run(["ray", "stop", "--force"], capture_output=True, check=False)
    print("stopped", ["ray", *(f"vllm {info['role']}" for info in stop_vllm_servers())])
    return 0


def prefix_counters(url: str | list[str]) -> dict[str, float]:
    """The prefix cache's hit and query tokens of a vLLM server (its root URL), or summed over a tier's servers;
    zeros from a server that does not answer (benchmarks/timeline.scrape)."""
    from benchmarks.timeline import scrape, total

    samples = scrape([f"{u}/metrics" for u in ([url] if isinstance(url, str) else url)])
    return {kind: total(samples, f"vllm:prefix_cache_{kind}_total") for kind in ("hits", "queries")}


def _delta(before: dict, after: dict) -> dict:
    hits, queries = after["hits"] - before["hits"], after["queries"] - before["queries"]
    return {"hits": hits, "queries": queries, "rate": round(hits / queries, 4) if queries else None}


VLLM_SAMPLE_DIR = Path("/tmp/suiqa-samples/vllm")  # throughput.sh llm-up starts the vLLM servers with it


def _profile_during(out: Path, users: int, delay_s: float, seconds: float) -> threading.Thread:
    """Sample the Ray workers, the vLLM processes (when llm-up armed them) and every process's CPU% for ``seconds``
    after ``delay_s`` (in a thread)."""
    dirs = [Path(os.environ["SUIQA_SAMPLE_DIR"]), *([VLLM_SAMPLE_DIR] if VLLM_SAMPLE_DIR.is_dir() else [])]

    def work():
        from benchmarks.gpu.proc_cpu import snapshot

        time.sleep(delay_s)
        for d in dirs:
            (d / "on").touch()
        cpu = snapshot(seconds)
        for d in dirs:
            (d / "on").unlink(missing_ok=True)
        time.sleep(1.5)  # let every sampler write its file
        (out / f"cpu-u{users}.json").write_text(json.dumps({"seconds": seconds, "rows": cpu}, indent=1))
        samples = []
        for f in (f for d in dirs for f in d.glob("*.json")):
            data = json.loads(f.read_text())
            f.unlink()  # the vLLM servers outlive the variant: the next window writes afresh
            if any(t["samples"] for t in data["threads"]):
                samples.append(data)
        (out / f"samples-u{users}.json").write_text(json.dumps(samples))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def variant(args) -> int:
    from benchmarks.report import write_report
    from benchmarks.runner import LoadSpec, parse_duration, parse_users, run_step, step_line
    from benchmarks.stats import SLO, new_summary
    from benchmarks.timeline import StepProbe, brief, dump
    from deployments.config import ApiSettings

    stack, servers = _stack_and_profiles(args)
    profiles = {role: p for role, p in servers.items() if role in ("domain", "agent")}
    agents = [p for p in servers.values() if p.role == "agent"]  # the agent tier's servers of llm-up
    settings = api_settings(stack, profiles)
    if len(agents) > 1:  # the agent tier's servers of llm-up --agent-replicas, routed run-affine
        settings = ApiSettings.model_validate(_deep_merge(settings.model_dump(), {"agent": {"agent_llm": {
            "replicas": [f"{p.base_url}/v1" for p in agents]}}}))
    if args.api:
        settings = ApiSettings.model_validate(_deep_merge(settings.model_dump(), json.loads(args.api)))
    out = Path(args.out) / args.name
    out.mkdir(parents=True, exist_ok=True)
    ray_env = _parse_assign(args.ray_env)
    os.environ.update({k: str(v) for k, v in ray_env.items()})
    if args.profile_at:
        sample_dir = Path("/tmp/suiqa-samples") / args.name
        sample_dir.mkdir(parents=True, exist_ok=True)
        os.environ["SUIQA_SAMPLE_DIR"] = str(sample_dir)
        os.environ["PYTHONPATH"] = os.pathsep.join([str(SAMPLER), os.environ.get("PYTHONPATH", "")])
    subprocess.run(["ray", "stop", "--force"], capture_output=True, check=False)
    from react_tier.knowledge import KnowledgeBase

    KnowledgeBase.load(settings.agent.knowledge)  # built once, so the replicas find it cached
    t = time.monotonic()
    address = start_ray(stack)
    deploy_app(address, settings)
    api = f"http://127.0.0.1:{settings.port}"
    wait_ready(f"{api}/ready", 300)
    ready_s = round(time.monotonic() - t, 1)
    print(f"variant {args.name}: Serve ready in {ready_s} s; deployment {settings.agent_deployment.model_dump()}; "
          f"ray env {ray_env}", flush=True)
    spec = LoadSpec(host=api, model=settings.served_model_name, api="chat", max_tokens=str(args.max_tokens),
                    stop_timeout_s=30, processes=None)
    duration = parse_duration(args.duration)
    summary = new_summary(f"pipeline-{args.name}", "online", {"url": api, "kind": "pipeline"},
                          {**spec.as_config(), "api_overrides": json.loads(args.api or "{}"), "ray_env": ray_env,
                           "serve_ready_s": ready_s, "deployment": settings.agent_deployment.model_dump(),
                           "agent_llm": settings.agent.agent_llm.model_dump(mode="json", exclude={"api_key"}),
                           "domain_llm": settings.agent.domain_llm.model_dump(mode="json", exclude={"api_key"})},
                          SLO(args.slo_ttft_ms, 1000.0))
    summary["command"] = " ".join(sys.argv)
    urls = {role: p.base_url for role, p in profiles.items()}
    endpoints = {"ray": f"http://127.0.0.1:{stack['ray_metrics_export_port']}/metrics",
                 "sui": f"http://127.0.0.1:{settings.metrics_port}/metrics",
                 **{role: f"{u}/metrics" for role, u in urls.items()}}
    ports = {str(p.port): p.role for p in servers.values()}  # each server's processes are its tier's
    if len(agents) > 1:  # the agent tier is several servers: their metrics add up
        urls["agent"] = [p.base_url for p in agents]
        endpoints["agent"] = [f"{u}/metrics" for u in urls["agent"]]
    tiers = {role: (role if role in urls else "domain", None) for role in ("domain", "agent")}  # one server: both
    steps = [(p, u) for p in range(1, args.passes + 1) for u in (parse_users(args.users) if args.users else [])]
    for run_pass, users in steps:  # --users '': a soak only
        spec.processes = 1 if users <= 64 else (2 if users <= 256 else 4)  # the pipeline streams few chunks
        before = {role: prefix_counters(u) for role, u in urls.items()}
        profile = users == args.profile_at and run_pass == 1
        prof_thread = _profile_during(out, users, 5.0, 8.0) if profile else None
        with StepProbe(endpoints, ports, tiers) as probe:
            step = run_step(spec, users, duration, out / raw_name(run_pass),
                            SLO(args.slo_ttft_ms, 1000.0))
        found = probe.result(step["requests"] - step["failures"])
        dump(out / probe_name(users, run_pass), found)
        step["pass"] = run_pass
        step["probe"] = {k: v for k, v in found.items() if k != "series"}
        if prof_thread:
            prof_thread.join(timeout=30)
        step["prefix_cache"] = {role: _delta(before[role], prefix_counters(u)) for role, u in urls.items()}
        summary["steps"].append(step)
        write_report(summary, out)
        print(step_line(step), "| tokens/run p50", (step.get("output_tokens") or {}).get("p50"),
              "| prefix", {r: v["rate"] for r, v in step["prefix_cache"].items()}, flush=True)
        print(brief(found), flush=True)
        if run_pass == 1 and users in {int(u) for u in args.compare_at.split(",") if u}:
            subprocess.run([sys.executable, "-m", "benchmarks.gpu.vllm_bench", "run", "--base-url", api,
                            "--endpoint", "/v1/chat/completions", "--backend", "openai-chat", "--model",
                            settings.served_model_name,
                            "--tokenizer", profiles.get("agent", profiles["domain"]).model_path,
                            "--concurrency", str(users), "--num-prompts", str(max(2 * users, 16)), "--clients", "1",
                            "--dataset-jsonl", str(_questions_jsonl()), "--output-len", str(args.max_tokens),
                            "--seed", "3", "--name", f"vllm-c{users}", "--out", str(out)], cwd=REPO, check=False)
            subprocess.run([sys.executable, "-m", "benchmarks.gpu.vllm_bench", "compare", "--vllm",
                            str(out / f"vllm-c{users}.json"), "--locust", str(out), "--users", str(users),
                            "--out", str(out / f"agreement-u{users}.json")], cwd=REPO, check=False)
    for soak in args.soak:  # SECONDS:CLIENTS:DIR, one after the other on this deployment
        seconds, clients, soak_out = soak.split(":", 2)
        print(f"soak: {clients} clients for {seconds} s -> {soak_out}", flush=True)
        subprocess.run([sys.executable, "-m", "benchmarks.soak.run", "--url", api, "--model",
                        settings.served_model_name, "--duration-s", seconds, "--concurrency", clients,
                        "--max-tokens", str(args.max_tokens), "--out", soak_out,
                        "--processes", str(min(8, max(1, int(clients) // 64))), "--sample-s", str(args.soak_sample_s)],
                       cwd=REPO, check=False, env={**os.environ, "SUIQA_SOAK_API_KEY": os.environ["BENCH_API_KEY"]})
    subprocess.run(["ray", "stop", "--force"], capture_output=True, check=False)
    return 0


def _questions_jsonl() -> Path:
    path = Path("/tmp/sui_questions.jsonl")
    if not path.is_file():
        lines = [q.strip() for q in (REPO / "benchmarks/data/sui_questions.txt").read_text(encoding="utf-8")
                 .splitlines() if q.strip() and not q.startswith("#")]
        path.write_text("".join(json.dumps({"prompt": q}, ensure_ascii=False) + "\n" for q in lines * 50))
    return path


def main(argv: list[str] | None = None) -> int:
    import secrets

    from suiqa.ray_local import RAY_LOCAL_ENV

    # before anything imports Ray (deployments.config does): Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER at import,
    # and without it the driver looks for the loopback-only head at the machine's routable address
    os.environ.update(RAY_LOCAL_ENV)

    # the GPU API profiles require keys: one per run unless given, sent by Locust (BENCH_API_KEY) and `vllm bench`
    key = os.environ.setdefault("BENCH_API_KEY", secrets.token_hex(16))
    os.environ.setdefault("SUIQA_API_API_KEYS", f"bench:{key}")
    os.environ.setdefault("OPENAI_API_KEY", key)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("llm-up")
    up.add_argument("--stack", default="gpu-bench")
    up.add_argument("--domain-model", required=True)
    up.add_argument("--agent-model", required=True)
    up.add_argument("--domain", action="append", default=[], metavar="FIELD=JSON")
    up.add_argument("--agent", action="append", default=[], metavar="FIELD=JSON")
    up.add_argument("--agent-replicas", type=int, default=1, help="agent tier servers on the one GPU (ports "
                    "agent port + 0, 1, ...); a variant routes runs to them run-affine")
    up.add_argument("--only", choices=["agent"], default=None, help="restart only the agent tier (its servers "
                    "stopped, the running domain tier kept with the overrides it was started with)")
    sub.add_parser("llm-down")
    v = sub.add_parser("variant")
    v.add_argument("--stack", default="gpu-bench")
    v.add_argument("--name", required=True)
    v.add_argument("--users", default="1,8,32,128,256,512,1024")
    v.add_argument("--duration", default="15s")
    v.add_argument("--passes", type=int, default=1, help="run the --users steps this many times on the one "
                   "deployment (best/median; repeat passes write probe-u<N>-p<K>.json, no vLLM client)")
    v.add_argument("--max-tokens", type=int, default=128)
    v.add_argument("--api", default="", help="JSON deep-merged into the ApiSettings")
    v.add_argument("--ray-env", action="append", default=[], metavar="KEY=VALUE")
    v.add_argument("--compare-at", default="")
    v.add_argument("--profile-at", type=int, default=0)
    v.add_argument("--slo-ttft-ms", type=float, default=10000.0)
    v.add_argument("--soak", action="append", default=[], metavar="SECONDS:CLIENTS:DIR",
                   help="after the steps: benchmarks.soak.run (repeatable, run in order)")
    v.add_argument("--soak-sample-s", type=float, default=5.0, help="the soaks' process sampling period (1 for a "
                   "step load: replicas over time)")
    v.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    return {"llm-up": llm_up, "llm-down": llm_down, "variant": variant}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())

"""`suiqa bench`: Locust load tests, reports, comparisons, the CPU suite and the agent-tier overhead benchmark."""

from __future__ import annotations

from pathlib import Path

import typer

from suiqa.errors import SuiqaError

app = typer.Typer(no_args_is_help=True, help="Benchmarks: Locust sweeps, reports with plots, comparisons.")
RESULTS = Path(__file__).with_name("results")
_RESULT_SETS = typer.Argument(..., help="Result folders (or summary.json files) to put side by side.")


def _slo(ttft_ms: float, tpot_ms: float):
    from benchmarks.stats import SLO

    return SLO(ttft_ms=ttft_ms, tpot_ms=tpot_ms)


def _sweep(target, name: str, users: str, duration: str, api: str, max_tokens: str, ignore_eos: bool,
           out: Path, slo, keep_records: bool) -> dict:
    from tqdm import tqdm

    from benchmarks.openai_stream import parse_max_tokens
    from benchmarks.runner import BenchError, LoadSpec, parse_duration, parse_users, run_sweep, step_line

    try:
        parse_max_tokens(max_tokens)
        steps, seconds = parse_users(users), parse_duration(duration)
        spec = LoadSpec(host=target.base_url, model=target.model, api=api, max_tokens=max_tokens,
                        ignore_eos=ignore_eos)
        with tqdm(total=len(steps), desc=name, unit="step", disable=None) as bar:
            def progress(step: dict) -> None:
                bar.write(step_line(step))
                bar.update(1)

            return run_sweep(name, spec, steps, seconds, out, slo, target=target.as_dict(),
                             keep_records=keep_records, progress=progress)
    except (BenchError, ValueError) as exc:
        raise SuiqaError(f"bench {name}: {exc}") from None


@app.command()
def run(
    target: str = typer.Option("domain", help="domain | hf-baseline | pipeline | an OpenAI-compatible base URL"),
    name: str = typer.Option(None, help="Result set name (default: the target's kind)."),
    users: str = typer.Option("1,8,32,128", help="Concurrency steps, comma-separated."),
    duration: str = typer.Option("60s", help="Measurement time per step (30s, 2m)."),
    api: str = typer.Option("chat", help="chat | completions"),
    max_tokens: str = typer.Option("128", help="Output length: N, or MIN:MAX sampled per request."),
    ignore_eos: bool = typer.Option(None, help="Send ignore_eos (default: on, except for the pipeline)."),
    model: str = typer.Option(None, help="Model name to send (default: from the target / profile)."),
    profile: str = typer.Option("cpu-tiny", help="Serving profile of the domain tier (domain, hf-baseline)."),
    start: bool = typer.Option(False, help="domain: start vLLM from the profile (port 8200) instead of using the "
                                           "running one; hf-baseline is always started."),
    port: int = typer.Option(None, help="Port for a server started here (8200-8209)."),
    slo_ttft_ms: float = typer.Option(1000.0, help="Goodput SLO: TTFT bound."),
    slo_tpot_ms: float = typer.Option(100.0, help="Goodput SLO: TPOT bound."),
    out: str = typer.Option(None, help="Results folder (default benchmarks/results/<name>)."),
    keep_records: bool = typer.Option(False, help="Keep per-request JSONL under <out>/raw (not for git)."),
) -> None:
    """Locust sweep over --users against one target: summary.json, report.md, latency.png, throughput.png."""
    from benchmarks.targets import open_target

    with open_target(target, profile=profile, start=start, port=port, model=model) as tgt:
        name = name or tgt.kind
        eos = ignore_eos if ignore_eos is not None else tgt.kind != "pipeline"
        out = Path(out) if out else RESULTS / name
        _sweep(tgt, name, users, duration, api, max_tokens, eos, out, _slo(slo_ttft_ms, slo_tpot_ms), keep_records)
    typer.echo(f"wrote {out / 'report.md'}")


@app.command()
def compare(
    results: list[str] = _RESULT_SETS,
    out: str = typer.Option(str(RESULTS / "compare"), help="Folder for report.md, comparison.json and plots."),
    title: str = typer.Option("Benchmark comparison"),
) -> None:
    """One table and one set of plots with two or more result sets side by side."""
    from benchmarks.report import write_comparison
    from benchmarks.stats import load_summary

    try:
        summaries = [load_summary(p) for p in results]
    except (FileNotFoundError, ValueError) as exc:
        raise SuiqaError(str(exc)) from None
    typer.echo(f"wrote {write_comparison(summaries, Path(out), title)}")


@app.command()
def suite(
    preset: str = typer.Argument("cpu", help="cpu: tiny models on this machine."),
    users: str = typer.Option("1,4,16"),
    duration: str = typer.Option("20s"),
    max_tokens: str = typer.Option("64"),
    profile: str = typer.Option("cpu-tiny"),
    pipeline_url: str = typer.Option("http://127.0.0.1:8080", help="Ray Serve pipeline API; skipped if down."),
    out: str = typer.Option(None, help="Default benchmarks/results/<preset>."),
    slo_ttft_ms: float = typer.Option(1000.0),
    slo_tpot_ms: float = typer.Option(100.0),
) -> None:
    """Domain vLLM tier (started on port 8200) vs the HF one-at-a-time baseline (8201) vs the pipeline, one report."""
    import httpx

    from benchmarks.report import write_comparison
    from benchmarks.targets import Target, open_target

    if preset != "cpu":
        raise SuiqaError(f"unknown suite {preset!r}; only 'cpu' exists (the GPU campaign uses benchmarks.runner)")
    out = Path(out) if out else RESULTS / preset
    slo = _slo(slo_ttft_ms, slo_tpot_ms)
    summaries, notes = [], []
    for kind, name in (("domain", "domain-vllm"), ("hf-baseline", "hf-baseline")):
        with open_target(kind, profile=profile, start=True) as tgt:
            summaries.append(_sweep(tgt, name, users, duration, "chat", max_tokens, True, out / name, slo, False))
    try:
        httpx.get(pipeline_url.rstrip("/") + "/v1/models", timeout=3).raise_for_status()
        tgt = Target("pipeline", pipeline_url.rstrip("/"), "sui-react", detail="Ray Serve pipeline API")
        summaries.append(_sweep(tgt, "pipeline", users, duration, "chat", max_tokens, False, out / "pipeline",
                                slo, False))
    except httpx.HTTPError as exc:
        notes.append(f"- pipeline: skipped, {pipeline_url} not reachable ({type(exc).__name__}); start it with "
                     "`suiqa up` (or the deployments CLI) and re-run.")
    intro = [f"Command: `suiqa bench suite {preset} --users {users} --duration {duration} --max-tokens {max_tokens}`",
             "", *notes, ""]
    typer.echo(f"wrote {write_comparison(summaries, out, f'CPU suite ({preset}): tiny models', intro)}")


@app.command()
def prompts(count: int = typer.Option(600), seed: int = typer.Option(0)) -> None:
    """Regenerate benchmarks/data/sui_questions.txt from the vendored Sui corpus."""
    from benchmarks.prompts import write_prompts
    from suiqa.paths import data_dir

    try:
        path = write_prompts(data_dir(), count=count, seed=seed)
    except FileNotFoundError as exc:
        raise SuiqaError(str(exc)) from None
    typer.echo(f"wrote {path}")


@app.command()
def overhead(
    users: str = typer.Option("1,32", help="Concurrency steps."),
    duration: str = typer.Option("15s"),
    replicas: str = typer.Option("1,2", help="Replica counts to compare."),
    variants: str = typer.Option("echo,pipeline", help="echo and/or pipeline."),
    serve_port: int = typer.Option(8205, help="Ray Serve HTTP proxy port."),
    instant_port: int = typer.Option(8206, help="Port of the instant OpenAI-compatible responder."),
    out: str = typer.Option(str(RESULTS / "overhead"), help="Results folder."),
) -> None:
    """Agent-tier orchestration overhead: the pipeline against an instant LLM vs a trivial Serve echo, 1 vs 2
    replicas."""
    from benchmarks.overhead import run_overhead
    from benchmarks.runner import BenchError, parse_duration, parse_users

    try:
        names = [v.strip() for v in variants.split(",") if v.strip()]
        report = run_overhead(parse_users(users), parse_duration(duration), parse_users(replicas), names,
                              serve_port, instant_port, Path(out), echo=typer.echo)
    except (BenchError, ValueError) as exc:
        raise SuiqaError(f"overhead benchmark: {exc}") from None
    typer.echo(f"wrote {report}")


@app.command()
def loadgen(
    mode: str = typer.Argument("compare", help="compare: Locust, vllm bench serve and AIPerf on one "
                                               "load; trace: the agent workload captured, exported, "
                                               "replayed by AIPerf."),
    targets: str = typer.Option("domain,pipeline", help="compare: domain and/or pipeline."),
    users: int = typer.Option(4, help="Concurrent users (closed loop), the same for every client."),
    duration: float = typer.Option(20.0, help="Seconds per client run."),
    rounds: int = typer.Option(3, help="compare: interleaved rounds (median and best)."),
    max_tokens: int = typer.Option(32),
    api_key: str = typer.Option(None, envvar="SUIQA_BENCH_API_KEY", help="The pipeline's bearer key."),
    out: str = typer.Option(str(RESULTS / "loadgen"), help="Results folder."),
) -> None:
    """The field's load generators against the running stack (`suiqa up`; hold /tmp/suiqa-stack.lock):
    benchmarks/loadgen.py. AIPerf runs from its own venv (`make aiperf-env`)."""
    from benchmarks.loadgen import main as loadgen_main

    if mode not in ("compare", "trace"):
        raise SuiqaError(f"unknown loadgen mode {mode!r}: compare or trace")
    argv = [mode, "--users", str(users), "--duration", str(duration), "--max-tokens", str(max_tokens),
            "--out", out]
    if api_key:
        argv += ["--api-key", api_key]
    if mode == "compare":
        argv += ["--targets", targets, "--rounds", str(rounds)]
    try:
        loadgen_main(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise SuiqaError(f"bench loadgen: {exc.code}") from None

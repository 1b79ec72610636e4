"""`suiqa canary`: the answer-quality canary once, through the running stack's API; `suiqa canary gate-kb`: a
knowledge-base rebuild that is only promoted when the canary passes on it.

``suiqa canary`` posts each question of the set to the API (``sui_cache: off``, one at a time: the production
path, HTTP included) and prints recall@5 of the evidence, citation validity and grounding (react_tier/canary.py
defines them); ``--check`` exits 1 when one is below its threshold.

``suiqa canary gate-kb [--data-dir DIR] [--force]`` builds the candidate index into a staging folder, runs the
canary on it through the stack's own agent (the running stack's settings and LLM tiers, the candidate knowledge
base injected), and on the current index for comparison. Below a threshold: refused — exit 1, the staging folder
removed, the live index untouched. Passing: the candidate replaces the live index folder (the previous one kept
beside it as ``<key>.previous``, which ``--rollback`` puts back); replicas load it when they (re)start.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import typer

app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=False)
QUESTIONS = typer.Option(None, "--questions", help="Canary question set (JSONL); default: the shipped one.")


def _stack():
    from stackctl.stack import api_settings, load_stack, serving_profiles
    from stackctl.stack import status as stack_status
    from suiqa.errors import SuiqaError

    state = stack_status()
    if not state:
        raise SuiqaError("no stack is up (suiqa up)")
    stack = load_stack(state["profile"])
    return state, api_settings(stack, serving_profiles(stack))


def print_slis(label: str, report, thresholds) -> None:
    slis = report.slis()
    typer.echo(f"{label:10s} recall@5 {slis['recall_at_5']:.2f} (>= {thresholds.min_recall_at_5:.2f})   "
               f"citation validity {slis['citation_validity']:.2f} (>= {thresholds.min_citation_validity:.2f})   "
               f"grounding {slis['grounding']:.2f} (>= {thresholds.min_grounding:.2f})   "
               f"{slis['questions']} questions, {slis['errors']} errors, {report.seconds:.0f} s")


async def _over_http(url: str, api_key: str | None, questions, kb):
    import httpx

    from react_tier.canary import run_canary

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(timeout=180, headers=headers) as http:
        async def ask(question: str) -> dict:
            body = {"model": "sui-react", "sui_cache": "off", "messages": [{"role": "user", "content": question}]}
            resp = await http.post(f"{url}/chat/completions", json=body)
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:120]}")
            return resp.json()["sui"]

        return await run_canary(questions, ask, kb)


@app.callback(invoke_without_command=True)
def canary(ctx: typer.Context, questions: Path | None = QUESTIONS,
           url: str | None = typer.Option(None, help="The API's /v1 URL; default: the running stack's."),
           api_key: str | None = typer.Option(None, envvar="SUIQA_CANARY_API_KEY", help="Bearer key, if any."),
           check: bool = typer.Option(False, "--check", help="Exit 1 when an SLI is below its threshold."),
           json_out: bool = typer.Option(False, "--json")) -> None:
    """Replay the canary question set through the running API once and print its SLIs."""
    if ctx.invoked_subcommand is not None:
        return
    from react_tier.canary import load_canary_set
    from react_tier.knowledge import KnowledgeBase

    qs = load_canary_set(questions)  # a missing / malformed set: the one-line error, before any request
    state, settings = _stack() if url is None else (None, None)
    url = url or state["urls"]["api"]
    from deployments.config import ApiSettings

    settings = settings or ApiSettings.load()
    report = asyncio.run(_over_http(url, api_key, qs, KnowledgeBase.load(settings.agent.knowledge)))
    thresholds = settings.canary.thresholds
    if json_out:
        typer.echo(json.dumps({**report.to_dict(), "failures": report.failures(thresholds)}, ensure_ascii=False))
    else:
        for row in report.rows:
            typer.echo(f"{row.id:8s} recall@5 {'yes' if row.recall_at_5 else 'no ':3s}  citations "
                       f"{'valid' if row.citations_valid else 'INVALID'}  grounding {row.grounding:.2f}"
                       + (f"  error: {row.error}" if row.error else ""))
        print_slis("canary", report, thresholds)
    if check and report.failures(thresholds):
        raise typer.Exit(1)


async def run_in_process(agent_settings, kb, questions):
    """The canary through the pipeline's own agent, in this process (the KB gate, the LoRA gate)."""
    from react_tier import ReActAgent
    from react_tier.canary import run_canary
    from react_tier.request import AgentRequest

    agent = ReActAgent.from_settings(agent_settings, knowledge_base=kb)
    try:
        return await run_canary(questions, lambda q: agent.run(AgentRequest(question=q, cache="off")), kb)
    finally:
        await agent.aclose()


@app.command("gate-kb")
def gate_kb(data_dir: Path | None = typer.Option(None, help="Build from this data folder (default: the live "
                                                 "one's)."),
            force: bool = typer.Option(False, "--force", help="Rebuild even where the index exists."),
            rollback: bool = typer.Option(False, "--rollback", help="Put the previous live index back."),
            questions: Path | None = QUESTIONS,
            report_path: Path | None = typer.Option(None, "--report", help="Also write both SLI sets and the "
                                                    "decision here (JSON).")) -> None:
    """Rebuild the knowledge base into staging; promote it only if the canary passes on it (else exit 1)."""
    from react_tier.canary import load_canary_set
    from react_tier.knowledge import KnowledgeBase
    from react_tier.knowledge.base import resolve_dirs
    from react_tier.knowledge.index import cache_key
    from suiqa.errors import SuiqaError
    from suiqa.paths import run_dir

    qs = load_canary_set(questions)
    _, settings = _stack()
    live = settings.agent.knowledge
    if data_dir is not None:
        live = live.model_copy(update={"data_dir": data_dir})
    live_data, live_cache = resolve_dirs(live)
    key, _ = cache_key(live, live_data)
    target, previous = live_cache / key, live_cache / f"{key}.previous"
    if rollback:
        if not previous.is_dir():
            raise SuiqaError(f"nothing to roll back: {previous} does not exist")
        shutil.rmtree(target, ignore_errors=True)
        previous.rename(target)
        typer.echo(f"rolled back: {target} is the previous index again")
        return
    if target.is_dir() and not force:
        typer.echo(f"{target} exists: nothing to rebuild (--force rebuilds it)")
        return
    staging_root = run_dir() / "kb-staging"
    shutil.rmtree(staging_root, ignore_errors=True)
    candidate = KnowledgeBase.build(live.model_copy(update={"cache_dir": staging_root}),
                                   progress=sys.stderr.isatty())  # bars on a terminal only
    thresholds = settings.canary.thresholds
    try:
        report = asyncio.run(run_in_process(settings.agent, candidate, qs))
        print_slis("candidate", report, thresholds)
        current, before = settings.agent.knowledge, None
        if (resolve_dirs(current)[1] / cache_key(current, resolve_dirs(current)[0])[0]).is_dir():
            before = asyncio.run(run_in_process(settings.agent, KnowledgeBase.load(current), qs))
            print_slis("current", before, thresholds)
        failures = report.failures(thresholds)
        if report_path is not None:
            report_path.write_text(json.dumps({
                "candidate": report.to_dict(), "current": before.to_dict() if before else None,
                "thresholds": thresholds.model_dump(), "failures": failures,
                "decision": "refused" if failures else "promoted", "data_dir": str(data_dir or live_data)},
                ensure_ascii=False, indent=1))
        if failures:
            typer.echo(f"refused: the canary fails on the candidate ({'; '.join(failures)}); the live index "
                       f"is unchanged", err=True)
            raise typer.Exit(1)
        if target.is_dir():
            shutil.rmtree(previous, ignore_errors=True)
            target.rename(previous)
        shutil.move(str(candidate.index_dir), str(target))
        serve = f" with SUIQA_KB_DATA_DIR={data_dir}" if data_dir is not None else ""
        typer.echo(f"promoted: {target} (previous kept as {previous.name}); replicas load it when they "
                   f"restart{serve}")
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="canary")

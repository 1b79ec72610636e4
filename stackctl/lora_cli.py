"""`suiqa lora load | unload | list`: LoRA adapters on the running domain tier, without a restart.

The target is the server of a serving profile (the same ``--profile``/``--model``/``--port`` as `suiqa serve
domain`): the profile says whether runtime adapters are on (``runtime_lora``), the largest rank the server
takes (``max_lora_rank``) and the base model an adapter must have been trained on; serving/lora.py checks the
folder against them before vLLM is called. The pipeline calls an adapter once its tier's settings name it
(``domain_llm.adapter``: docs/lora.md).

``suiqa lora load NAME FOLDER --gate`` is the adapter swap's rollout gate (issue 27, like ``suiqa canary gate-kb``
for a knowledge-base rebuild): once loaded, the answer-quality canary (react_tier/canary.py: recall@5 of the
evidence, citation validity, grounding) runs through the pipeline's own agent — the API settings (``--api-config``
YAML, ``SUIQA_API_*``, ``SUIQA_REACT_*``) with ``domain_llm`` pointed at this tier and at the new adapter — and
below a threshold the adapter is unloaded again and the command exits 1: a tier never keeps an adapter that fails
the canary. A missing or malformed question set is refused before anything is loaded."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="LoRA adapters on a running vLLM tier (vLLM's runtime loading).")

_PROFILE = typer.Option("cpu-tiny", help="The tier's serving profile (serving/profiles) or YAML path.")
_ROLE = typer.Option("domain", help="domain | agent")
_MODEL = typer.Option(None, help="The profile's model folder, if the tier was started with --model.")
_PORT = typer.Option(None, help="The profile's port, if the tier was started with --port.")
_URL = typer.Option(None, help="The server's base URL (default: the profile's).")


def _target(profile: str, role: str, model: str | None, port: int | None, url: str | None):
    from serving.config import load_profile

    if role not in ("domain", "agent"):
        raise typer.BadParameter("domain or agent", param_hint="--role")
    prof = load_profile(profile, role=role, model=model, port=port)
    key = prof.api_key.get_secret_value() if prof.api_key is not None else None
    return prof, (url or prof.base_url), key


def gate_settings(api_config: Path | None, name: str, base_url: str, served_name: str, key: str | None):
    """The pipeline's agent settings for the gate: the API settings with ``domain_llm`` on this tier's server and
    the new adapter (the rest — agent tier, knowledge base, limits, canary thresholds — as the API runs them)."""
    from pydantic import SecretStr

    from deployments.config import ApiSettings

    settings = ApiSettings.load(api_config)
    update = {"base_url": base_url.rstrip("/") + "/v1", "model": served_name, "adapter": name}
    if key is not None:
        update["api_key"] = SecretStr(key)
    current = settings.agent.domain_llm
    domain = type(current).model_validate({**current.model_dump(), **update})  # validated: adapter != model
    return settings.agent.model_copy(update={"domain_llm": domain}), settings.canary.thresholds


@app.command("load")
def load(name: str = typer.Argument(..., help="The adapter's model name (what requests ask for)."),
         folder: str = typer.Argument(..., help="The PEFT adapter folder (`suiqa finetune lora`: "
                                                 "<out>/adapter)."),
         profile: str = _PROFILE, role: str = _ROLE, model: str | None = _MODEL, port: int | None = _PORT,
         url: str | None = _URL,
         gate: bool = typer.Option(False, "--gate", help="Run the answer-quality canary through the pipeline "
                                   "with the adapter; below a threshold unload it again and exit 1."),
         api_config: Path | None = typer.Option(None, "--api-config", help="The gate's API settings YAML "
                                                "(default: SUIQA_API_*, SUIQA_REACT_*, the defaults)."),
         questions: Path | None = typer.Option(None, "--questions", help="The gate's canary question set (JSONL); "
                                               "default: the shipped one.")) -> None:
    """Check the adapter folder against the tier's profile, then load it into the running server."""
    from serving.lora import LoraClient, check_adapter

    prof, base_url, key = _target(profile, role, model, port, url)
    if gate and role != "domain":
        raise typer.BadParameter("the gate runs the pipeline with a domain-tier adapter", param_hint="--gate")
    adapter = check_adapter(name, folder, prof)
    if gate:
        from react_tier.canary import load_canary_set

        canary_set = load_canary_set(questions)  # a missing / malformed set: its one-line error, nothing loaded
        agent_settings, thresholds = gate_settings(api_config, name, base_url, prof.api_model_name, key)
    with LoraClient(base_url, key) as client:
        client.load(adapter)
        typer.echo(f"loaded {name} (rank {adapter.rank}, {adapter.path}) on {base_url}")
        if not gate:
            return
        try:
            failures = _run_gate(agent_settings, thresholds, canary_set)
        except BaseException:  # the gate could not run (an upstream down, Ctrl-C): the adapter was not gated
            client.unload(name)
            raise
        if failures:
            client.unload(name)
            typer.echo(f"refused: the canary fails with adapter {name} ({'; '.join(failures)}); unloaded it "
                       f"again", err=True)
            raise typer.Exit(1)
    typer.echo(f"gated: the canary passes with domain_llm.adapter={name}; the pipeline calls it once its "
               f"settings name it (SUIQA_REACT_DOMAIN_LLM__ADAPTER={name})")


def _run_gate(agent_settings, thresholds, canary_set) -> list[str]:
    import asyncio

    from react_tier.knowledge import KnowledgeBase
    from stackctl.canary_cli import print_slis, run_in_process

    report = asyncio.run(run_in_process(agent_settings, KnowledgeBase.load(agent_settings.knowledge), canary_set))
    print_slis("adapter", report, thresholds)
    return report.failures(thresholds)


@app.command("unload")
def unload(name: str = typer.Argument(...), profile: str = _PROFILE, role: str = _ROLE,
           model: str | None = _MODEL, port: int | None = _PORT, url: str | None = _URL) -> None:
    """Unload an adapter from the running server."""
    from serving.lora import LoraClient

    _, base_url, key = _target(profile, role, model, port, url)
    with LoraClient(base_url, key) as client:
        client.unload(name)
    typer.echo(f"unloaded {name} from {base_url}")


@app.command("list")
def list_adapters(profile: str = _PROFILE, role: str = _ROLE, model: str | None = _MODEL,
                  port: int | None = _PORT, url: str | None = _URL,
                  json_out: bool = typer.Option(False, "--json")) -> None:
    """The adapters loaded on the running server (name, base model, folder)."""
    import json

    from serving.lora import LoraClient

    _, base_url, key = _target(profile, role, model, port, url)
    with LoraClient(base_url, key) as client:
        adapters = client.adapters()
    if json_out:
        typer.echo(json.dumps(adapters))
    elif not adapters:
        typer.echo(f"no adapters loaded on {base_url}")
    for a in [] if json_out else adapters:
        typer.echo(f"{a['id']}\t{a['parent']}\t{a['root']}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="lora")

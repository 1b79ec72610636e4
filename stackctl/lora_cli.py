"""`suiqa lora load | unload | list`: LoRA adapters on the running domain tier, without a restart.

The target is the server of a serving profile (the same ``--profile``/``--model``/``--port`` as `suiqa serve
domain`): the profile says whether runtime adapters are on (``runtime_lora``), the largest rank the server
takes (``max_lora_rank``) and the base model an adapter must have been trained on; serving/lora.py checks the
folder against them before vLLM is called. The pipeline calls an adapter once its tier's settings name it
(``domain_llm.adapter``: docs/lora.md)."""

from __future__ import annotations

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


@app.command("load")
def load(name: str = typer.Argument(..., help="The adapter's model name (what requests ask for)."),
         folder: str = typer.Argument(..., help="The PEFT adapter folder (`suiqa finetune lora`: "
                                                 "<out>/adapter)."),
         profile: str = _PROFILE, role: str = _ROLE, model: str | None = _MODEL, port: int | None = _PORT,
         url: str | None = _URL) -> None:
    """Check the adapter folder against the tier's profile, then load it into the running server."""
    from serving.lora import LoraClient, check_adapter

    prof, base_url, key = _target(profile, role, model, port, url)
    adapter = check_adapter(name, folder, prof)
    with LoraClient(base_url, key) as client:
        client.load(adapter)
    typer.echo(f"loaded {name} (rank {adapter.rank}, {adapter.path}) on {base_url}")


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

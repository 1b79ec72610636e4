"""`suiqa up | down | status | restart | serve-config`: the whole local stack."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def up(profile: str = typer.Option("cpu-tiny", help="Stack profile (stackctl/profiles) or YAML path."),
       with_prometheus: bool | None = typer.Option(
           None, "--with-prometheus/--without-prometheus",
           help="Also start a local Prometheus (Debian's package) scraping every tier, rules loaded."),
       json_out: bool = typer.Option(False, "--json")) -> None:
    """Start domain vLLM, agent vLLM, the knowledge base and the Ray Serve app; wait until /ready."""
    from stackctl.stack import load_stack
    from stackctl.stack import up as stack_up

    urls = stack_up(load_stack(profile, prometheus=with_prometheus))
    if json_out:
        typer.echo(json.dumps(urls))
        return
    for name, url in urls.items():
        typer.echo(f"{name:12s} {url}")


def down() -> None:
    """Stop everything `suiqa up` started."""
    from stackctl.stack import down as stack_down

    stopped = stack_down()
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def restart(role: str = typer.Argument(..., help="domain | agent")) -> None:
    """Restart one vLLM tier of the running stack with the stack's own settings for it (Ray Serve keeps running)."""
    from stackctl.stack import restart as stack_restart

    if role not in ("domain", "agent"):
        raise typer.BadParameter("domain or agent")
    typer.echo(f"{role} tier ready at {stack_restart(role)}")


def status() -> None:
    """Print the running stack's URLs."""
    from stackctl.stack import status as stack_status

    state = stack_status()
    typer.echo(json.dumps(state, indent=2) if state else "no stack is up")
    if not state:
        raise typer.Exit(1)


def serve_config(profile: str = typer.Option("cpu-tiny"),
                 out: Path | None = typer.Option(None, help="Write here instead of stdout.")) -> None:
    """Emit a `serve deploy` YAML generated from the typed config (validated against Ray's schema)."""
    from deployments.serve_config import serve_config_yaml
    from stackctl.stack import api_settings, load_stack, serving_profiles

    stack = load_stack(profile)
    text = serve_config_yaml(api_settings(stack, serving_profiles(stack)))
    if out:
        out.write_text(text, encoding="utf-8")
    else:
        typer.echo(text)


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("restart")(restart)
    app.command("serve-config")(serve_config)

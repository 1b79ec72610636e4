"""`suiqa serve domain|agent [--profile ...]`: run a vLLM tier in the foreground."""

from __future__ import annotations

import signal
import time

import typer

app = typer.Typer(no_args_is_help=True, help="Run a vLLM tier (OpenAI-compatible server) in the foreground.")

DEFAULT_PROFILES = {"domain": "cpu-tiny", "agent": "cpu-tiny-agent"}


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _serve(role: str, profile: str | None, port: int | None, model: str | None, print_command: bool) -> None:
    from serving.config import load_profile
    from serving.launcher import VLLMServer

    prof = load_profile(profile or DEFAULT_PROFILES[role], role=role, port=port, model=model)
    if print_command:
        typer.echo(" ".join(prof.command()))
        return
    signal.signal(signal.SIGTERM, _interrupt)
    server = VLLMServer(prof).start()
    try:
        server.wait_ready()
        typer.echo(f"{server.label} ready: {prof.base_url}/v1 (model {prof.api_model_name}); Ctrl-C stops it")
        while server.process and server.process.poll() is None:
            time.sleep(1)
        typer.echo(f"{server.label} exited; log: {server.log_path}", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):  # a second signal must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        server.stop()


_PROFILE = typer.Option(None, help="Profile name (serving/profiles) or YAML path.")
_PORT = typer.Option(None, help="Override the profile's port.")
_MODEL = typer.Option(None, help="Override the profile's model folder.")
_PRINT = typer.Option(False, "--print-command", help="Print the vLLM command line and exit.")


@app.command("domain")
def serve_domain(profile: str | None = _PROFILE, port: int | None = _PORT, model: str | None = _MODEL,
                 print_command: bool = _PRINT) -> None:
    """The domain model (InternLM2-chat, merged or base+LoRA)."""
    _serve("domain", profile, port, model, print_command)


@app.command("agent")
def serve_agent(profile: str | None = _PROFILE, port: int | None = _PORT, model: str | None = _MODEL,
                print_command: bool = _PRINT) -> None:
    """The agent model (Qwen) that runs the ReAct loop."""
    _serve("agent", profile, port, model, print_command)


@app.command("profiles")
def list_profiles() -> None:
    """List the bundled profiles."""
    from serving.config import PROFILES_DIR, available_profiles

    for name in available_profiles():
        first = (PROFILES_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        typer.echo(f"{name:28s} {first}")



"""`suiqa`: one console script; each package contributes its own command group (this module imports them all:
it is the top of the import graph)."""

from __future__ import annotations

import logging
import sys

import typer

from suiqa.errors import SuiqaError

app = typer.Typer(
    name="suiqa",
    help="Sui-dynasty QA serving stack: tiny models, vLLM tiers, knowledge base, ReAct agent, Ray Serve API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # Each module keeps its heavy imports inside the commands, so `suiqa --help` stays fast.
    from benchmarks.cli import app as bench_app
    from finetune.cli import app as finetune_app
    from react_tier.cli import register as register_agent
    from react_tier.knowledge.cli import app as kb_app
    from serving.cli import app as serve_app
    from stackctl.canary_cli import register as register_canary
    from stackctl.lora_cli import register as register_lora
    from stackctl.settings_doc import register as register_settings
    from stackctl.stack_cli import register as register_stack
    from suiqa.models.cli import app as models_app
    from webui.cli import register as register_webui

    app.add_typer(models_app, name="models")
    app.add_typer(serve_app, name="serve")
    app.add_typer(kb_app, name="kb")
    app.add_typer(finetune_app, name="finetune")
    app.add_typer(bench_app, name="bench")
    register_agent(app)   # suiqa ask
    register_stack(app)   # suiqa up / down / status
    register_settings(app)  # suiqa settings
    register_webui(app)   # suiqa webui
    register_lora(app)    # suiqa lora load / unload / list
    register_canary(app)  # suiqa canary [gate-kb]


_register()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        app()
    except SuiqaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

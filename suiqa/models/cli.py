"""`suiqa models build-tiny`."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Offline random-weight checkpoints (no model hub).")


@app.command("build-tiny")
def build_tiny(
    out: Path | None = typer.Option(None, help="Output folder (default: $SUIQA_HOME/models)."),
    domain_shape: str = typer.Option("tiny", help="tiny | internlm2-1_8b (real shape, random weights)."),
    agent_shape: str = typer.Option("tiny", help="tiny | qwen2_5-1_5b (real shape, random weights)."),
    vocab: int = typer.Option(6000, help="Tokenizer vocabulary size (byte-level BPE on data/)."),
    seed: int = typer.Option(0),
    force: bool = typer.Option(False, help="Rebuild even if the same spec is already built."),
    device: str = typer.Option("cpu",
                               help="Draw the random weights on this torch device (cuda: fast for real shapes)."),
) -> None:
    """Build the InternLM2 domain and Qwen2 agent checkpoints with their tokenizers, deterministically."""
    from suiqa.models.builder import BuildSpec, build_models
    from suiqa.paths import models_dir

    spec = BuildSpec(domain_shape=domain_shape, agent_shape=agent_shape, tokenizer_vocab=vocab, seed=seed)
    paths = build_models(out or models_dir(), spec, force=force, device=device)
    for role, path in paths.items():
        size = sum(f.stat().st_size for f in path.iterdir()) / 1e6
        typer.echo(f"{role:7s} {path}  ({size:.1f} MB)")

"""`suiqa finetune ...`: instruction data, InternLM2 <-> Llama conversion, PEFT LoRA + merge, XTuner wrappers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    no_args_is_help=True, help="Fine-tuning: Sui poetry instruction data, LoRA/QLoRA, merge, XTuner."
)
xtuner_app = typer.Typer(no_args_is_help=True, help="XTuner 0.1.23 in .venv-xtuner (`make xtuner-env`).")
app.add_typer(xtuner_app, name="xtuner")


def _default_out(*parts: str) -> Path:
    from suiqa.paths import state_dir

    return state_dir().joinpath("finetune", *parts)


@app.command("data")
def data_cmd(
    out: Optional[Path] = typer.Option(None, help="Output folder [default: $SUIQA_HOME/finetune/data]."),
    source: Optional[Path] = typer.Option(None, help="Poetry folder [default: data/poetry-qa]."),
    seed: int = typer.Option(0, help="Sampling seed (same seed + corpus = identical files)."),
    val_fraction: float = typer.Option(0.03, min=0.0, max=0.5, help="Share of questions held out."),
) -> None:
    """Generate instruction pairs from the poems (alpaca JSON + chat JSONL, train/val)."""
    from finetune.data import DataConfig, build_dataset
    from suiqa.paths import data_dir

    out = out or _default_out("data")
    stats = build_dataset(
        source or data_dir() / "poetry-qa", out, DataConfig(seed=seed, val_fraction=val_fraction)
    )
    typer.echo(
        f"{stats.pairs} pairs from {stats.poems} poems in {stats.files} files "
        f"({stats.duplicates_dropped} duplicate questions dropped): train {stats.train}, val {stats.val}"
    )
    typer.echo(f"Sui / Sui-era pairs: {stats.sui_pairs} ({stats.sui_era_poets} Sui poets)")
    for kind, n in stats.by_kind.items():
        typer.echo(f"  {kind:12s} {n:6d}")
    typer.echo(f"written to {out}: train|val.alpaca.json, train|val.chat.jsonl, stats.json")


@app.command("convert")
def convert_cmd(
    src: Path = typer.Argument(..., help="Checkpoint folder."),
    out: Path = typer.Argument(..., help="Output folder."),
    to: str = typer.Option("llama", help="Target layout: llama | internlm2."),
) -> None:
    """Convert a checkpoint between the InternLM2 and Llama weight layouts (exact: tensors are only re-sliced)."""
    from finetune.convert import internlm2_dir_to_llama, llama_dir_to_internlm2
    from suiqa.errors import SuiqaError

    if to not in ("llama", "internlm2"):
        raise SuiqaError(f"unknown --to {to!r}; choose llama or internlm2")
    (internlm2_dir_to_llama if to == "llama" else llama_dir_to_internlm2)(src, out)
    typer.echo(f"{to} checkpoint written to {out}")


@app.command("lora")
def lora_cmd(
    base: Path = typer.Option(..., help="Base model (InternLM2 is converted to Llama layout first)."),
    data: Path = typer.Option(..., help="Chat JSONL or alpaca JSON from `suiqa finetune data`."),
    out: Path = typer.Option(..., help="Output folder: adapter/ (+ base-llama/ when converted)."),
    config: Optional[Path] = typer.Option(
        None, help="YAML with LoRA settings (finetune.settings.LoraSettings)."
    ),
    steps: Optional[int] = typer.Option(None, help="Optimizer steps."),
    r: Optional[int] = typer.Option(None, help="LoRA rank."),
    lr: Optional[float] = typer.Option(None, help="Learning rate."),
    batch_size: Optional[int] = typer.Option(None, help="Conversations per step."),
    max_length: Optional[int] = typer.Option(None, help="Max tokens per conversation."),
    quantize: Optional[str] = typer.Option(None, help="none | 4bit (QLoRA, CUDA only)."),
) -> None:
    """Train a LoRA adapter with PEFT (CPU or CUDA; QLoRA with --quantize 4bit on CUDA)."""
    from finetune.lora import train_lora
    from finetune.settings import LoraSettings

    settings = LoraSettings.load(
        config, steps=steps, r=r, lr=lr, batch_size=batch_size, max_length=max_length, quantize=quantize
    )
    result = train_lora(base, data, out, settings.hyper())
    typer.echo(
        f"adapter: {result.adapter_dir} (base for serving it: {result.base_llama_dir}); loss "
        f"{result.first_loss:.3f} -> {result.last_loss:.3f}, {result.tokens_per_s:.0f} tokens/s"
    )


@app.command("merge")
def merge_cmd(
    base: Path = typer.Option(..., help="Base model the adapter was trained on (InternLM2 or Llama layout)."),
    adapter: Path = typer.Option(..., help="LoRA adapter folder."),
    out: Path = typer.Option(..., help="Merged model folder."),
    layout: str = typer.Option(
        "internlm2", help="Layout of the merged model: internlm2 (serving profile) | llama."
    ),
) -> None:
    """Merge a LoRA adapter into its base (merge_and_unload) and save it."""
    from finetune.lora import merge_adapter

    typer.echo(f"merged model ({layout} layout) written to {merge_adapter(base, adapter, out, layout)}")


@app.command("bench-lora", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_lora_cmd(ctx: typer.Context) -> None:
    """LoRA training throughput on a random-weight model (same as `python -m finetune.bench_lora --help`)."""
    from finetune.bench_lora import main

    main(list(ctx.args))


@xtuner_app.command("train")
def xtuner_train(
    config: str = typer.Argument(..., help="Config path or name in finetune/configs."),
    work_dir: Path = typer.Option(None, help="Work dir [default: $SUIQA_HOME/finetune/xtuner/<config>]."),
    model: Optional[Path] = typer.Option(None, help="Replace pretrained_model_name_or_path."),
    data: Optional[Path] = typer.Option(None, help="Replace sui_alpaca_path."),
    max_iters: Optional[int] = typer.Option(None, help="Replace max_iters (iteration-based configs)."),
) -> None:
    """`xtuner train` on a rendered copy of CONFIG."""
    from finetune import xtuner

    work_dir = work_dir or _default_out("xtuner", Path(config).stem)
    rendered, pth = xtuner.train(config, work_dir, model, data, max_iters)
    typer.echo(f"checkpoint: {pth} (config used: {rendered})")


@xtuner_app.command("pth-to-hf")
def xtuner_pth_to_hf(
    config: str = typer.Argument(...), pth: Path = typer.Argument(...), out: Path = typer.Argument(...)
) -> None:
    """`xtuner convert pth_to_hf CONFIG PTH OUT`: checkpoint -> PEFT adapter."""
    from finetune import xtuner

    typer.echo(f"adapter: {xtuner.pth_to_hf(config, pth, out)}")


@xtuner_app.command("merge")
def xtuner_merge(
    base: Path = typer.Argument(...), adapter: Path = typer.Argument(...), out: Path = typer.Argument(...)
) -> None:
    """`xtuner convert merge BASE ADAPTER OUT --device cpu`."""
    from finetune import xtuner

    typer.echo(f"merged model: {xtuner.merge(base, adapter, out)}")

"""`suiqa kb build | search | poem | group | get` (the JSON formats are fixed: other tools parse them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Sui knowledge base: build the index, search passages, look up poems.")

CacheDir = typer.Option(None, "--cache-dir", help="Index cache root (default: $SUIQA_HOME/kb).")
DataDir = typer.Option(None, "--data-dir", help="Vendored data root (default: data/).")


def _settings(data_dir: Path | None, cache_dir: Path | None):
    from react_tier.knowledge.settings import KnowledgeSettings

    return KnowledgeSettings.load(data_dir=data_dir, cache_dir=cache_dir)


def _load(data_dir: Path | None, cache_dir: Path | None):
    from react_tier.knowledge.base import KnowledgeBase

    return KnowledgeBase.load(_settings(data_dir, cache_dir), progress=sys.stderr.isatty())


DENSE_HELP = ("Also train the dense encoder (if missing) and encode the passages with it "
              "(for dense_weight > 0).")


@app.command()
def build(force: bool = typer.Option(False, "--force", help="Rebuild even if a cached index exists (with "
                                                          "--dense: retrain the encoder too)."),
          dense: bool = typer.Option(False, "--dense", help=DENSE_HELP),
          data_dir: Path | None = DataDir, cache_dir: Path | None = CacheDir) -> None:
    """Build (or reuse) the index cache for the current data files."""
    import time

    from react_tier.knowledge.base import KnowledgeBase, resolve_dirs
    from react_tier.knowledge.index import build_dense, encoder_file

    started = time.perf_counter()
    settings = _settings(data_dir, cache_dir)
    # the dense vectors are added after the BM25 index: load it without them first
    kb = KnowledgeBase.build(settings.model_copy(update={"dense_weight": 0.0}), progress=sys.stderr.isatty(),
                             force=force)
    typer.echo(f"knowledge base ready: {len(kb)} passages, {kb.manifest['poems']} poems in {kb.index_dir} "
               f"({time.perf_counter() - started:.1f} s)")
    if dense:
        data, cache = resolve_dirs(settings)
        record = build_dense(settings, data, kb.index_dir, encoder_file(settings, cache), retrain=force,
                             progress=sys.stderr.isatty())
        typer.echo(f"dense vectors ready: encoder {record['encoder_sha256'][:12]} "
                   f"(trained in {record['encoder'].get('train_seconds')} s), {record['seconds']} s")


@app.command()
def search(query: str, k: int = typer.Option(5, "-k", "--k", help="How many passages."),
           as_json: bool = typer.Option(False, "--json", help='JSON list of {"id","source","title","text","score"}.'),
           data_dir: Path | None = DataDir, cache_dir: Path | None = CacheDir) -> None:
    """Passages that answer QUERY, best first."""
    passages = _load(data_dir, cache_dir).search(query, k=k)
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in passages], ensure_ascii=False, indent=1))
        return
    for p in passages:
        typer.echo(f"[{p.score:.4f}] {p.id}  {p.title}\n{p.text}\n")


@app.command()
def poem(text: str | None = typer.Argument(None, help="A line (or lines) of verse."),
         title: str | None = typer.Option(None, "--title"), author: str | None = typer.Option(None, "--author"),
         k: int = typer.Option(5, "-k", "--k"),
         as_json: bool = typer.Option(False, "--json", help='JSON list of {"id","title","author","content"}.'),
         data_dir: Path | None = DataDir, cache_dir: Path | None = CacheDir) -> None:
    """Poems matching a line of verse, a title and/or an author."""
    from suiqa.errors import SuiqaError

    poems = _load(data_dir, cache_dir).lookup_poem(text, title=title, author=author, k=k)
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in poems], ensure_ascii=False, indent=1))
        return
    if not poems:  # an unknown poem is an answer, not an empty screen
        given = (("line", text), ("title", title), ("author", author))
        asked = ", ".join(f"{name} {value!r}" for name, value in given if value)
        raise SuiqaError(f"no poem in the knowledge base matches {asked}")
    for p in poems:
        typer.echo(f"{p.id}  《{p.title}》 {p.author or '无名氏'}\n{p.content}\n")


@app.command()
def group(title: str, author: str | None = typer.Option(None, "--author"),
          as_json: bool = typer.Option(False, "--json", help="JSON object of the group (count, members, ...)."),
          data_dir: Path | None = DataDir, cache_dir: Path | None = CacheDir) -> None:
    """A poem group (组诗): how many poems make it up and which they are."""
    from suiqa.errors import SuiqaError

    found = _load(data_dir, cache_dir).poem_group(title, author)
    if found is None:
        raise SuiqaError(f"no poem group named {title!r}" + (f" by {author}" if author else ""))
    if as_json:
        typer.echo(json.dumps(found.to_dict(), ensure_ascii=False, indent=1))
        return
    typer.echo(found.text())


@app.command()
def get(passage_id: str, data_dir: Path | None = DataDir, cache_dir: Path | None = CacheDir) -> None:
    """One passage by its id (as JSON)."""
    from suiqa.errors import SuiqaError

    passage = _load(data_dir, cache_dir).get(passage_id)
    if passage is None:
        raise SuiqaError(f"no passage with id {passage_id!r}")
    typer.echo(json.dumps(passage.to_dict(), ensure_ascii=False, indent=1))

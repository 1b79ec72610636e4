"""`suiqa ask` (filled in by the ReAct agent issue)."""

import typer


def register(app: typer.Typer) -> None:
    pass

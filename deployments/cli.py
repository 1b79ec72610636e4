"""`suiqa up|down|status` (filled in by the Ray Serve issue)."""

import typer


def register(app: typer.Typer) -> None:
    pass

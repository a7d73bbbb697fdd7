"""The settings every CLI command shares: read once by the root command, then handed down."""

from __future__ import annotations

import typer

from switchyard.config import Settings


def load_settings(ctx: typer.Context) -> None:
    """The root callback: read the environment once, for whichever command runs."""
    ctx.obj = _read()


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root callback read (a command invoked on its own reads them itself)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = _read()
    return root.obj


def _read() -> Settings:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # where the SQLite database and key files go
    return settings

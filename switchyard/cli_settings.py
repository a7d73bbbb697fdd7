"""The settings every CLI command shares: read once by the root command, then handed down."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from sqlmodel import Session

from switchyard.config import Settings
from switchyard.exceptions import SwitchyardError
from switchyard.schema import open_database

T = TypeVar("T")


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


def run_in_database(ctx: typer.Context, work: Callable[[Session], T]) -> T:
    """``work`` in a session on the configured database (every table in place). A domain error
    ends the command with its message on stderr and exit code 1, never a traceback."""
    with open_database(settings_of(ctx).resolved_database_url) as session:
        try:
            return work(session)
        except SwitchyardError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from None

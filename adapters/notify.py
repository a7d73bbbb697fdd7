"""Registry change announcements over PostgreSQL LISTEN/NOTIFY.

Every routing change bumps the registry generation and, on PostgreSQL, sends a NOTIFY in the
same transaction (delivered only if it commits). Gateways listening on the channel refresh at
once instead of at their next poll; polling stays as the fallback (and is all SQLite has).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlmodel import Session

logger = logging.getLogger(__name__)
CHANNEL = "switchyard_registry"


def announce_change(session: Session) -> None:
    """Queue a notification in the caller's transaction (no-op off PostgreSQL)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))


def _conninfo(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def listen_for_changes(
    url: URL, on_change: Callable[[], Awaitable[object]], *, retry_max_s: float = 30.0
) -> None:
    """Call ``on_change`` for every announcement, forever; reconnects with backoff."""
    import psycopg

    delay = 1.0
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(_conninfo(url), autocommit=True) as connection:
                await connection.execute(f"LISTEN {CHANNEL}")
                delay = 1.0
                # Changes made while we were away are caught by this first refresh.
                await on_change()
                async for _ in connection.notifies():
                    await on_change()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("registry listener lost its connection (%s); retrying in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(retry_max_s, delay * 2)

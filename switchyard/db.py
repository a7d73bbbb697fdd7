"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL in production."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlmodel import Session, create_engine

# SQLSTATE classes that mean "not now" rather than "not this": connection exception,
# insufficient resources (too many connections, disk full), operator intervention (shutdown).
POSTGRES_UNAVAILABLE_CLASSES = frozenset({"08", "53", "57"})
# SQLSTATE classes that mean "never this row": data exception, integrity constraint violation,
# program limit exceeded (a value too large for its column).
POSTGRES_DATA_CLASSES = frozenset({"22", "23", "54"})
SQLITE_UNAVAILABLE_MARKERS = ("database is locked", "unable to open database", "disk I/O error", "database is full")

T = TypeVar("T")

DB_INT_MAX = 2**31 - 1
"""Largest value of an integer column (PostgreSQL ``integer``): ids and version numbers from clients
are bounded by it, so an oversized one is a 400/404 rather than a database error."""


def storable_text(value: str | None) -> str | None:
    """``value`` if every database can store it, else ``ValueError`` (a 400 the client can fix,
    rather than a refusal by PostgreSQL, a 500 it cannot): no NUL, no unpaired surrogate."""
    if value is None:
        return None
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must not contain unpaired surrogates") from None
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the gateway, the CLI and the tuner read while the log drain writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL mode and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


async def run_in_session(engine: Engine, work: Callable[[Session], T]) -> T:
    """``work`` in a session of its own, on a worker thread: database calls block, and the
    services that await this share the event loop with serving."""

    def run() -> T:
        with session_scope(engine) as session:
            return work(session)

    return await asyncio.to_thread(run)


def is_connection_error(exc: BaseException) -> bool:
    """True when the database could not be reached or could not serve for now (a lost
    connection, a server shutting down, too many connections, a locked SQLite file), as opposed
    to refusing what it was sent. Only the first kind may be reported as the database being down:
    a NUL byte in text or a syntax error is a fault in the statement, and retrying can never help.

    DB-API's ``OperationalError`` alone cannot tell them apart (SQLite raises it for syntax errors,
    psycopg for "null character not permitted"), so the SQLSTATE class decides on PostgreSQL, and
    the message on SQLite, which has no SQLSTATE.
    """
    if isinstance(exc, DisconnectionError):
        return True
    if not isinstance(exc, DBAPIError):
        return isinstance(exc, ConnectionError | TimeoutError)
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    original = exc.orig
    if isinstance(original, sqlite3.Error):
        return any(marker in str(original) for marker in SQLITE_UNAVAILABLE_MARKERS)
    sqlstate = getattr(original, "sqlstate", None)
    # No SQLSTATE: the driver never got an answer from the server.
    return sqlstate is None or sqlstate[:2] in POSTGRES_UNAVAILABLE_CLASSES


def is_data_error(exc: BaseException) -> bool:
    """True when what was sent can never be stored as it is (a value the column refuses, a
    constraint), so retrying the same row is pointless. Anything else (a lock, a serialization
    failure, a missing table, an outage) may pass on a later try and must be retried."""
    if not isinstance(exc, DBAPIError):
        # Raised while the row is built or bound, before the database sees it.
        return isinstance(exc, ValueError | TypeError | OverflowError)
    if isinstance(exc, DataError | IntegrityError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate is not None and sqlstate[:2] in POSTGRES_DATA_CLASSES

"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL in production."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlmodel import Session, create_engine

# SQLSTATE classes that mean "not now" rather than "not this": connection exception,
# insufficient resources (too many connections, disk full), operator intervention (shutdown).
POSTGRES_UNAVAILABLE_CLASSES = frozenset({"08", "53", "57"})
SQLITE_UNAVAILABLE_MARKERS = ("database is locked", "unable to open database", "disk I/O error", "database is full")

DB_INT_MAX = 2**31 - 1
"""Largest value of an integer column (PostgreSQL ``integer``): ids and version numbers from clients
are bounded by it, so an oversized one is a 400/404 rather than a database error."""


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

"""Database errors: only an unreachable database is an outage (503); a refused statement is a bug (500).
Both kinds are produced by the real databases, not constructed."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.error_responses import error_payload
from switchyard.db import is_connection_error, is_data_error, make_engine
from tests.utils.db import POSTGRES_URL


def _raised(url: str, statement: str) -> DBAPIError:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("the statement was expected to fail")


@pytest.mark.postgres
def test_a_refused_statement_is_not_an_outage() -> None:
    exc = _raised(POSTGRES_URL, "SELECT 'a' || chr(0)")  # PostgreSQL refuses NUL in text
    status, body = error_payload(exc)
    assert status == 500 and body["error"]["code"] == "internal_error"
    assert "chr" not in body["error"]["message"]


@pytest.mark.postgres
def test_an_unreachable_database_is_an_outage() -> None:
    exc = _raised("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1", "SELECT 1")
    status, body = error_payload(exc)
    assert status == 503 and body["error"]["code"] == "database_unavailable"
    assert "127.0.0.1" not in body["error"]["message"]


def test_sqlite_syntax_error_is_not_an_outage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    exc = _raised(f"sqlite:///{tmp_path / 'x.db'}", "SELEC 1")
    assert error_payload(exc)[0] == 500


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("statement", "data_error"),
    [
        ("SELECT 'a' || chr(0)", True),  # a value no column can hold: never retry this row
        ("SELECT 'abc'::varchar(2)::int", True),
        ("SELECT * FROM no_such_table", False),  # systemic: every row would fail, retry later
    ],
)
def test_only_data_errors_are_a_rows_fault(statement: str, data_error: bool) -> None:
    assert is_data_error(_raised(POSTGRES_URL, statement)) is data_error


def test_an_outage_is_not_a_data_error() -> None:
    exc = _raised("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1", "SELECT 1")
    assert not is_data_error(exc) and is_connection_error(exc)

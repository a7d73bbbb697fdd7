"""Any row becomes storable: NUL, lone surrogates, NaN and overlong text are cleaned, recursively."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from switchyard.traffic.crud import insert_logs_idempotent
from switchyard.traffic.sanitize import COLUMN_LIMITS, CUT_MARK, REPLACEMENT, clean_json, clean_text, sanitize_row

R = REPLACEMENT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("a\x00b\x00", f"a{R}b{R}"),
        ("lone \ud800 high", f"lone {R} high"),
        ("lone \udfff low", f"lone {R} low"),
        ("\ud83d\ude00", "😀"),  # a pair written as two code points is joined, not replaced
        ("héllo 😀", "héllo 😀"),
    ],
)
def test_clean_text(text: str, expected: str) -> None:
    cleaned = clean_text(text, 100)
    assert cleaned == expected
    cleaned.encode("utf-8")  # never raises


def test_cut_is_marked_and_fits() -> None:
    cut = clean_text("x" * 50, 20)
    assert len(cut) == 20 and cut.endswith(CUT_MARK)
    assert clean_text("x" * 50, 3) == "xxx"  # too short for the mark: a plain cut
    assert clean_text("x" * 20, 20) == "x" * 20


def test_clean_json_reaches_keys_nested_values_and_floats() -> None:
    value = {"k\x00": [{"deep": ("t\x00", float("nan"), float("inf"))}], "n": 1, "b": True, "none": None}
    cleaned = clean_json(value, 100)
    assert cleaned == {f"k{R}": [{"deep": [f"t{R}", "nan", "inf"]}], "n": 1, "b": True, "none": None}
    json.dumps(cleaned, allow_nan=False)  # strict JSON: PostgreSQL takes it


def test_sanitize_row_uses_each_column_limit() -> None:
    row = {"model": "m" * 1000, "tenant": "t" * 1000, "output": "o" * 5000, "request": ["r" * 5000], "status": 200}
    clean = sanitize_row(row, max_field_chars=2000)
    assert len(clean["model"]) == COLUMN_LIMITS["model"] == 256
    assert len(clean["tenant"]) == COLUMN_LIMITS["tenant"] == 128
    assert len(clean["output"]) == 2000 and len(clean["request"][0]) == 2000
    assert clean["status"] == 200 and row["model"] == "m" * 1000  # the input is left alone


def test_an_opted_out_request_is_sql_null(db: Engine) -> None:
    """Filters use IS NULL to find rows without content; the JSON text 'null' would slip past."""
    insert_logs_idempotent(
        engine=db,
        records=[
            {"id": "x", "endpoint": "chat.completions", "model": "m", "params": {}, "status": 200, "request": None}
        ],
    )
    with db.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM request_log WHERE request IS NULL")).scalar() == 1

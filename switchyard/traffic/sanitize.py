"""Makes any traffic-log row storable in both databases, whatever the request carried.

A row is built from client input (a model name, messages, stop strings, schemas) and from
engine output, and one unstorable value must never hold up the log: PostgreSQL refuses NUL in
text and ``NaN`` in JSON, UTF-8 cannot encode a lone surrogate, and a string longer than its
column (or than ``max_field_chars``) either fails or bloats every later read. So every string,
down through JSON values and their keys, is cleaned once, when the row is appended.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from switchyard.traffic.models import RequestLog

REPLACEMENT = "\ufffd"
"""Stands in for a NUL or a lone surrogate, so the row still shows that something was there."""
CUT_MARK = "…[cut]"
"""Ends a string that was cut to fit."""

# Bounded string columns (``VARCHAR(n)``): a longer value fails on PostgreSQL and in validation.
COLUMN_LIMITS: dict[str, int] = {
    column.name: column.type.length
    for column in RequestLog.__table__.columns  # type: ignore[attr-defined]
    if getattr(column.type, "length", None)
}


def clean_text(text: str, limit: int) -> str:
    """``text`` without NUL or lone surrogates, at most ``limit`` characters (a cut is marked)."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # UTF-16 with surrogatepass joins a pair written as two code points and marks a lone one.
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if len(text) <= limit:
        return text
    if limit <= len(CUT_MARK):
        return text[:limit]
    return text[: limit - len(CUT_MARK)] + CUT_MARK


def clean_json(value: Any, limit: int) -> Any:
    """A JSON value with every string (keys too) cleaned; non-finite floats become strings."""
    if isinstance(value, str):
        return clean_text(value, limit)
    if isinstance(value, Mapping):
        return {clean_text(str(k), limit): clean_json(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v, limit) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity; PostgreSQL refuses the whole document
    return value


def sanitize_row(row: Mapping[str, Any], *, max_field_chars: int) -> dict[str, Any]:
    """A copy of ``row`` that both databases accept: every string cleaned and cut to fit its column."""
    clean: dict[str, Any] = {}
    for name, value in row.items():
        limit = min(COLUMN_LIMITS.get(name, max_field_chars), max_field_chars)
        clean[name] = clean_json(value, limit)
    return clean

"""The columns a drift check compares, and the text descriptors computed from the two texts.

Every column comes from the traffic log: the last user message and the response, their token
counts, latency, time to first token, finish reason and the mean feedback score. The descriptors
(length, word count, share of non-letters) are computed here with plain string operations, so a
check never needs a download (Evidently's own descriptors may fetch NLTK data or models).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from monitoring.drift.models import ColumnKind, ColumnRole


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind
    role: ColumnRole = ColumnRole.content


PROMPT = "prompt"
RESPONSE = "response"
TEXTS = (PROMPT, RESPONSE)
DESCRIPTORS = ("length", "words", "non_letter_share")
"""Suffixes of the descriptor columns: ``prompt_length``, ``response_words``, …"""

COLUMNS: tuple[Column, ...] = (
    Column(PROMPT, ColumnKind.text),
    Column(RESPONSE, ColumnKind.text),
    *(Column(f"{text}_{descriptor}", ColumnKind.numerical) for text in TEXTS for descriptor in DESCRIPTORS),
    Column("prompt_tokens", ColumnKind.numerical),
    Column("completion_tokens", ColumnKind.numerical),
    Column("finish_reason", ColumnKind.categorical),
    Column("feedback_score", ColumnKind.numerical),
    Column("latency_ms", ColumnKind.numerical, ColumnRole.performance),
    Column("ttft_ms", ColumnKind.numerical, ColumnRole.performance),
)
COLUMNS_BY_NAME = {column.name: column for column in COLUMNS}
LOGGED = ("prompt_tokens", "completion_tokens", "latency_ms", "ttft_ms", "finish_reason", "feedback_score")
"""Columns read from the log as they are (the texts are extracted, the descriptors computed)."""

# Unicode letters: word characters that are neither digits nor the underscore.
LETTER = r"[^\W\d_]"
WORD = r"\S+"


def describe_texts(texts: pd.Series, prefix: str) -> pd.DataFrame:
    """Length in characters, number of whitespace-separated words, and the share of characters
    that are not letters (digits, punctuation, spaces, symbols) of each text; empty for a missing
    text, and the share is empty for an empty one."""
    strings = texts.astype("string")
    length = strings.str.len().astype("Float64")
    letters = strings.str.count(LETTER).astype("Float64")
    non_letters = (1 - letters / length.where(length > 0)).astype("Float64")
    return pd.DataFrame(
        {
            f"{prefix}_length": length.astype("float64"),
            f"{prefix}_words": strings.str.count(WORD).astype("Float64").astype("float64"),
            f"{prefix}_non_letter_share": non_letters.astype("float64"),
        },
        index=texts.index,
    )


def with_descriptors(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (its ``prompt`` and ``response`` text columns and the logged ones) with the
    descriptor columns added, in :data:`COLUMNS` order, numbers as floats (NaN when missing)."""
    parts = [frame] + [describe_texts(frame[text], text) for text in TEXTS]
    described = pd.concat(parts, axis=1)[[column.name for column in COLUMNS]]
    for column in COLUMNS:
        if column.kind is ColumnKind.numerical:
            described[column.name] = pd.to_numeric(described[column.name], errors="coerce").astype("float64")
    return described


def empty_frame() -> pd.DataFrame:
    """A frame with every compared column and no rows."""
    return with_descriptors(pd.DataFrame({name: pd.Series(dtype="object") for name in (*TEXTS, *LOGGED)}))

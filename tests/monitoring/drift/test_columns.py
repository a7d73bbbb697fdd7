"""The text descriptors: computed here, offline, with plain string operations."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from monitoring.drift.columns import COLUMNS, describe_texts, with_descriptors
from monitoring.drift.models import ColumnKind


@pytest.mark.parametrize(
    ("text", "length", "words", "non_letters"),
    [
        ("Hello, world 42", 15, 3, 5 / 15),
        ("Ünïcödé straße", 14, 2, 1 / 14),  # letters beyond ASCII are letters
        ("  spaced   out  ", 16, 2, 7 / 16),
        ("!!! ??? 123", 11, 3, 1.0),
        ("", 0, 0, math.nan),  # no characters: no share to speak of
    ],
)
def test_descriptors_of_a_text(text: str, length: int, words: int, non_letters: float) -> None:
    described = describe_texts(pd.Series([text]), "prompt").iloc[0]
    assert described["prompt_length"] == length
    assert described["prompt_words"] == words
    if math.isnan(non_letters):
        assert math.isnan(described["prompt_non_letter_share"])
    else:
        assert described["prompt_non_letter_share"] == pytest.approx(non_letters)


def test_a_missing_text_has_no_descriptors() -> None:
    described = describe_texts(pd.Series([None, "ok"]), "response")
    assert described.iloc[0].isna().all()
    assert described.iloc[1].tolist() == [2.0, 1.0, 0.0]


def test_frames_hold_every_column_in_order_with_numbers_as_floats() -> None:
    frame = with_descriptors(
        pd.DataFrame(
            {
                "prompt": ["where is my parcel", None],
                "response": ["on its way", "sorry"],
                "prompt_tokens": [12, None],
                "completion_tokens": [4, 2],
                "latency_ms": [20.5, 31.0],
                "ttft_ms": [None, None],
                "finish_reason": ["stop", "length"],
                "feedback_score": [None, 0.5],
            }
        )
    )
    assert list(frame.columns) == [column.name for column in COLUMNS]
    for column in COLUMNS:
        if column.kind is ColumnKind.numerical:
            assert frame[column.name].dtype == "float64", column.name
    assert math.isnan(frame["ttft_ms"].iloc[0]) and frame["feedback_score"].iloc[1] == 0.5

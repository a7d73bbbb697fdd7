"""False alarms and detection, through logged traffic and the monitor's own windows.

Each check compares a window of 40 requests with the 40 just before it (the monitor's default
reference when an adapter has no training snapshot). The traffic is seeded, so each run sees the
same windows; a change that raises the false-alarm rate or loses a shift fails here."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy.engine import Engine

from monitoring.drift.models import DriftStatus, DriftTrigger, TimeWindow, Windows
from tests.monitoring.drift.conftest import MonitorFactory
from tests.utils.drift import CODING, T0, log_traffic
from tests.utils.tuning import add_adapter

WINDOW = 40
WINDOWS = 20


def window(index: int) -> TimeWindow:
    """The ``index``-th block of ``WINDOW`` requests logged one a second from T0."""
    return TimeWindow(T0 + timedelta(seconds=index * WINDOW), T0 + timedelta(seconds=(index + 1) * WINDOW))


def test_stationary_traffic_is_flagged_in_under_five_percent_of_windows(
    sqlite_db: Engine, make_monitor: MonitorFactory
) -> None:
    add_adapter(sqlite_db, "bot")
    log_traffic(sqlite_db, (WINDOWS + 1) * WINDOW, rng=random.Random(2026))
    monitor = make_monitor(sqlite_db)
    results = [
        monitor.check("bot", trigger=DriftTrigger.api, windows=Windows(current=window(i)))
        for i in range(1, WINDOWS + 1)
    ]
    assert {r.status for r in results} == {DriftStatus.ok}
    assert {(r.reference_rows, r.current_rows) for r in results} == {(WINDOW, WINDOW)}
    flagged = [r.id for r in results if r.drifted]
    assert len(flagged) / len(results) < 0.05, flagged


def test_a_shift_in_vocabulary_or_in_prompt_length_is_flagged(sqlite_db: Engine, make_monitor: MonitorFactory) -> None:
    rng = random.Random(7)
    add_adapter(sqlite_db, "bot")
    log_traffic(sqlite_db, 2 * WINDOW, rng=rng)
    log_traffic(sqlite_db, WINDOW, rng=rng, topic=CODING, start=T0 + timedelta(seconds=2 * WINDOW), prefix="v-")
    log_traffic(sqlite_db, WINDOW, rng=rng, words=(24, 40), start=T0 + timedelta(seconds=3 * WINDOW), prefix="l-")
    monitor = make_monitor(sqlite_db)

    def check(current: int, reference: int):  # type: ignore[no-untyped-def]
        result = monitor.check(
            "bot", trigger=DriftTrigger.api, windows=Windows(reference=window(reference), current=window(current))
        )
        return result, {c["column"] for c in result.columns if c["drifted"]}

    unchanged, _ = check(1, 0)
    vocabulary, vocabulary_columns = check(2, 0)
    length, length_columns = check(3, 0)
    assert not unchanged.drifted
    assert vocabulary.drifted and "prompt" in vocabulary_columns
    assert length.drifted and {"prompt_length", "prompt_words", "prompt_tokens"} <= length_columns
    assert "prompt" not in length_columns  # the same topic, only longer

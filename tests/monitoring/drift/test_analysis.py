"""The comparison itself, on frames: per-column tests, their thresholds, and what cannot be
compared (a result, never an error)."""

from __future__ import annotations

import random
import socket

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.core import ColumnType
from scipy.stats import mannwhitneyu

from monitoring.drift.analysis import CHI2, KS, TEXT, _chi2_two_sample, analyse, auc_threshold
from monitoring.drift.models import DriftStatus
from tests.utils.drift import CODING, frame_of, logged_rows

OPTIONS = {"min_values": 30, "false_alarm_rate": 0.01, "alert_on_performance": False}


def columns_of(analysis) -> dict:  # type: ignore[no-untyped-def]
    return {column.column: column for column in analysis.columns}


def test_the_categorical_test_compares_two_samples() -> None:
    same = pd.Series(["stop"] * 60 + ["length"] * 40)
    p_same, drifted = _chi2_two_sample(same, same.copy(), ColumnType.Categorical, 0.01)
    assert p_same == pytest.approx(1.0) and not drifted
    shifted = pd.Series(["stop"] * 20 + ["length"] * 80)
    p_shift, drifted = _chi2_two_sample(same, shifted, ColumnType.Categorical, 0.01)
    assert p_shift < 1e-6 and drifted
    assert _chi2_two_sample(pd.Series(["stop"] * 5), pd.Series(["stop"] * 9), ColumnType.Categorical, 0.01) == (
        1.0,
        False,
    )


def test_equal_proportions_in_small_windows_are_not_flagged_by_the_categorical_test() -> None:
    """Evidently's ``chisquare`` takes the reference as exact; two equal-sized samples of one
    distribution would cross its threshold about twice as often as the rate asked for."""
    rng = np.random.default_rng(5)
    flagged = sum(
        _chi2_two_sample(
            pd.Series(rng.choice(["stop", "length"], 60)), pd.Series(rng.choice(["stop", "length"], 60)), None, 0.01
        )[1]
        for _ in range(1000)
    )
    assert flagged <= 20  # 1 % of 1000, with room for chance


@pytest.mark.parametrize(("n_reference", "n_current"), [(30, 30), (40, 90)])
def test_the_text_threshold_is_the_null_distributions_quantile(n_reference: int, n_current: int) -> None:
    rng = np.random.default_rng(11)
    threshold = auc_threshold(n_reference, n_current, 0.01)
    aucs = [
        mannwhitneyu(rng.random(n_current), rng.random(n_reference)).statistic / (n_reference * n_current)
        for _ in range(4000)
    ]
    assert 0.5 < threshold < 0.9
    assert np.mean(np.array(aucs) > threshold) == pytest.approx(0.01, abs=0.006)


def test_a_vocabulary_shift_drifts_the_prompt_text() -> None:
    rng = random.Random(1)
    analysis = analyse(frame_of(logged_rows(80, rng=rng)), frame_of(logged_rows(80, rng=rng, topic=CODING)), **OPTIONS)
    columns = columns_of(analysis)
    assert analysis.status is DriftStatus.ok and analysis.drifted
    assert columns["prompt"].drifted and columns["prompt"].method == TEXT and columns["prompt"].score > 0.9
    assert not columns["response"].drifted  # the answers did not change
    assert columns["prompt_tokens"].method == KS and columns["finish_reason"].method == CHI2


def test_the_verdict_is_evidentlys_dataset_drift_over_the_deciding_columns() -> None:
    rng = random.Random(2)
    analysis = analyse(
        frame_of(logged_rows(80, rng=rng)), frame_of(logged_rows(80, rng=rng, words=(30, 50))), **OPTIONS
    )
    deciding = [c for c in analysis.columns if c.decides_verdict and c.status is DriftStatus.ok]
    drifted = [c.column for c in deciding if c.drifted]
    assert {"prompt_length", "prompt_words", "prompt_tokens"} <= set(drifted)
    assert analysis.drift_share == pytest.approx(len(drifted) / len(deciding))
    metrics = analysis.snapshot.dict()["metrics"]
    evidently = next(m for m in metrics if m["config"]["type"] == "evidently:metric_v2:DriftedColumnsCount")
    assert evidently["value"] == {"count": float(len(drifted)), "share": pytest.approx(analysis.drift_share)}


def test_performance_alone_decides_nothing_unless_asked() -> None:
    rng = random.Random(3)
    reference = frame_of(logged_rows(80, rng=rng))
    slower = frame_of(logged_rows(80, rng=rng))
    slower["latency_ms"] *= 5
    analysis = analyse(reference, slower, **OPTIONS)
    assert columns_of(analysis)["latency_ms"].drifted and not columns_of(analysis)["latency_ms"].decides_verdict
    assert not analysis.drifted
    assert analyse(reference, slower, **OPTIONS | {"alert_on_performance": True}).drifted


def test_a_sparse_column_is_left_out_and_says_why() -> None:
    rng = random.Random(4)
    reference, current = frame_of(logged_rows(80, rng=rng)), frame_of(logged_rows(80, rng=rng))
    current.loc[:9, "feedback_score"] = 1.0
    feedback = columns_of(analyse(reference, current, **OPTIONS))["feedback_score"]
    assert feedback.status is DriftStatus.insufficient_data and feedback.drifted is None
    assert feedback.reason == "too few values (0 in the reference window, 10 in the current window; 30 needed)"


def test_text_of_too_little_variety_is_insufficient_data_and_the_rest_is_compared() -> None:
    """Evidently's text test raises "After pruning, no terms remain" on such text."""
    rng = random.Random(5)
    reference, current = frame_of(logged_rows(80, rng=rng)), frame_of(logged_rows(80, rng=rng))
    for frame in (reference, current):
        frame["response"] = "yes"  # a classifier adapter's answers
    analysis = analyse(reference, current, **OPTIONS)
    response = columns_of(analysis)["response"]
    assert analysis.status is DriftStatus.ok and not analysis.drifted
    assert response.status is DriftStatus.insufficient_data and "no terms remain" in (response.reason or "")
    assert columns_of(analysis)["prompt"].status is DriftStatus.ok


def test_nothing_to_decide_on_is_insufficient_data() -> None:
    rng = random.Random(6)
    reference, current = frame_of(logged_rows(80, rng=rng)), frame_of(logged_rows(80, rng=rng))
    for frame in (reference, current):
        for name in frame.columns:
            if name not in ("latency_ms", "ttft_ms"):
                frame[name] = pd.Series([None] * len(frame), dtype=object)
    analysis = analyse(reference, current, **OPTIONS)
    assert analysis.status is DriftStatus.insufficient_data and not analysis.drifted
    assert analysis.snapshot is None and analysis.drift_share is None
    assert {c.status for c in analysis.columns} == {DriftStatus.insufficient_data}


def test_the_guard_cuts_the_network() -> None:
    """The ``offline`` fixture every drift test runs under refuses any address but loopback (shown
    on a stand-in socket, so nothing could leave even if it did not)."""

    class StandIn:
        family = socket.AF_INET

    with pytest.raises(OSError, match="may not reach"):
        socket.socket.connect(StandIn(), ("192.0.2.1", 80))  # type: ignore[arg-type]


def test_against_a_curated_snapshot_the_feedback_it_was_chosen_by_decides_nothing() -> None:
    """Curation keeps well-rated requests, so served traffic always rates lower than the snapshot
    behind the active version; that must not flag drift (and ask for a refresh) forever."""
    rng = random.Random(6)
    reference = frame_of(logged_rows(80, rng=rng))
    current = frame_of(logged_rows(80, rng=rng))
    reference["feedback_score"] = [1.0] * len(reference)
    current["feedback_score"] = [rng.choice((-1.0, 0.0, 1.0)) for _ in range(len(current))]
    assert analyse(reference, current, **OPTIONS).drifted  # the same feedback gap, in a plain window
    curated = analyse(reference, current, **OPTIONS, curated_reference=True)
    feedback = columns_of(curated)["feedback_score"]
    assert feedback.drifted and not feedback.decides_verdict
    assert not curated.drifted

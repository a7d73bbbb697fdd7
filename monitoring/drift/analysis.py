"""Comparing two windows with Evidently 0.7: a ``DataDriftPreset`` over the columns that decide
the verdict, and a ``ValueDrift`` for each performance column, in one ``Report``.

False alarms are bounded by design. Each column that decides the verdict is tested at the
configured false-alarm rate divided by the number of such columns (Bonferroni), so unchanged
traffic is flagged in at most that share of windows whatever the number of columns:

- numbers: two-sample Kolmogorov–Smirnov (``ks``, a p-value);
- categories: a two-sample chi-square test of homogeneity (``chi2_two_sample``, registered here
  with Evidently: its own ``chisquare`` treats the reference as exact, which with windows of
  equal size about doubles its false alarms);
- texts: Evidently's domain classifier (``abs_text_content_drift``: TF-IDF and a linear model
  told to separate the two windows, scored by ROC AUC on a held-out half). Its threshold is the
  AUC that random scores exceed with the column's share of the false-alarm rate, from the
  Mann–Whitney null distribution for the held-out half's sizes: the test Evidently's bootstrapped
  ``perc_text_content_drift`` approximates, without its thousand ROC AUCs per call.

Evidently's text test raises ``After pruning, no terms remain`` on text of very little variety
(every term in more than half the documents, or a stop word). Such a column is reported as
``insufficient_data`` (the same split and vectorizer are tried first), and its descriptors are
still compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
from evidently.legacy.core import ColumnType
from evidently.metrics import ValueDrift
from evidently.presets import DataDriftPreset
from scipy.stats import chi2_contingency, norm
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split

from monitoring.drift.columns import COLUMNS, Column
from monitoring.drift.models import ColumnDrift, ColumnKind, ColumnRole, DriftStatus

NO_TERMS = "no terms remain"
"""What scikit-learn's vectorizer says when Evidently's text test finds nothing to learn from."""
KS = "ks"
CHI2 = "chi2_two_sample"
TEXT = "abs_text_content_drift"
P_VALUE_METHODS = frozenset({KS, CHI2})
"""Methods whose score is a p-value (drift below the threshold); the text test's is a ROC AUC
(drift above it)."""
METHODS = {ColumnKind.numerical: KS, ColumnKind.categorical: CHI2, ColumnKind.text: TEXT}


def _chi2_two_sample(
    reference: pd.Series, current: pd.Series, _feature_type: ColumnType, threshold: float
) -> tuple[float, bool]:
    categories = sorted(set(reference.unique()) | set(current.unique()), key=str)
    if len(categories) < 2:
        return 1.0, False
    table = [
        [int((reference == category).sum()) for category in categories],
        [int((current == category).sum()) for category in categories],
    ]
    p_value = float(chi2_contingency(table, correction=False).pvalue)
    return p_value, p_value < threshold


register_stattest(
    StatTest(
        name=CHI2,
        display_name="chi-square two-sample p_value",
        allowed_feature_types=[ColumnType.Categorical],
        default_threshold=0.05,
    ),
    _chi2_two_sample,
)


@dataclass
class Analysis:
    status: DriftStatus
    columns: list[ColumnDrift]
    drifted: bool = False
    drift_share: float | None = None
    reason: str | None = None
    snapshot: Snapshot | None = field(default=None, repr=False)


def _domain_split(reference: pd.Series, current: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The training texts and held-out labels of Evidently's domain classifier for this column
    (its own concatenation and ``train_test_split``, so the check below sees what it will)."""
    domain = pd.concat([pd.DataFrame({"text": reference, "target": 0}), pd.DataFrame({"text": current, "target": 1})])
    x_train, _x_test, _y_train, y_test = train_test_split(
        domain["text"], domain["target"], test_size=0.5, random_state=42, shuffle=True
    )
    return x_train, y_test


def _held_out_sizes(reference: pd.Series, current: pd.Series) -> tuple[int, int] | str:
    """How many reference and current texts the domain classifier is scored on, or why the
    column cannot be tested."""
    x_train, y_test = _domain_split(reference, current)
    try:
        TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english").fit(x_train)
    except ValueError as exc:
        if NO_TERMS not in str(exc):
            raise
        return "too little variety in the text to compare (after pruning, no terms remain)"
    n_current = int(y_test.sum())
    if n_current == 0 or n_current == len(y_test):
        return "the held-out half lacks one of the windows"
    return len(y_test) - n_current, n_current


def auc_threshold(n_reference: int, n_current: int, alpha: float) -> float:
    """The ROC AUC that scores unrelated to the labels exceed with probability ``alpha``: the
    normal approximation of the Mann–Whitney U statistic's null distribution."""
    sd = math.sqrt((n_reference + n_current + 1) / (12 * n_reference * n_current))
    return min(0.5 + float(norm.isf(alpha)) * sd, 1.0)


def _present(series: pd.Series) -> pd.Series:
    return series.replace([math.inf, -math.inf], math.nan).dropna()


SELECTED_BY_CURATION = frozenset({"feedback_score"})
"""Columns curation selects training examples by (``tuner.selection``: the feedback score)."""


def analyse(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    min_values: int,
    false_alarm_rate: float,
    alert_on_performance: bool,
    curated_reference: bool = False,
    timestamp: datetime | None = None,
    tags: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
) -> Analysis:
    """Compare ``current`` with ``reference`` (frames with every column of :data:`COLUMNS`).

    ``curated_reference``: the reference is a training snapshot's requests, which curation chose
    by their feedback; those columns are still compared and shown, but cannot make the window
    drifted (ordinary traffic always differs from a set picked for good feedback, and a refresh
    could never fix that). Raises ``ValueError`` only for what is not about the data (a bug); a
    column or window that cannot be compared is a result."""
    decides = {
        c.name: (c.role is ColumnRole.content or alert_on_performance)
        and not (curated_reference and c.name in SELECTED_BY_CURATION)
        for c in COLUMNS
    }
    counts = {c.name: (len(_present(reference[c.name])), len(_present(current[c.name]))) for c in COLUMNS}

    def column_drift(column: Column, status: DriftStatus, **fields: Any) -> ColumnDrift:
        reference_values, current_values = counts[column.name]
        return ColumnDrift(
            column=column.name,
            kind=column.kind,
            role=column.role,
            decides_verdict=decides[column.name],
            status=status,
            reference_values=reference_values,
            current_values=current_values,
            **fields,
        )

    results: dict[str, ColumnDrift] = {}
    held_out: dict[str, tuple[int, int]] = {}
    for column in COLUMNS:
        short = [
            f"{n} in the {side} window"
            for n, side in zip(counts[column.name], ("reference", "current"), strict=True)
            if n < min_values
        ]
        if short:
            reason = f"too few values ({', '.join(short)}; {min_values} needed)"
            results[column.name] = column_drift(column, DriftStatus.insufficient_data, reason=reason)
        elif column.kind is ColumnKind.text:
            sizes = _held_out_sizes(_present(reference[column.name]), _present(current[column.name]))
            if isinstance(sizes, str):
                results[column.name] = column_drift(column, DriftStatus.insufficient_data, reason=sizes, method=TEXT)
            else:
                held_out[column.name] = sizes
    tested = [c for c in COLUMNS if c.name not in results]
    voters = [c for c in tested if decides[c.name]]
    if not voters:
        reason = "not compared: no column that decides the verdict has enough data"
        for column in tested:
            results[column.name] = column_drift(column, DriftStatus.insufficient_data, reason=reason)
        return Analysis(
            DriftStatus.insufficient_data,
            [results[c.name] for c in COLUMNS],
            reason="no column that decides the verdict has enough data to compare",
        )
    alpha = false_alarm_rate / len(voters)
    thresholds = {
        c.name: auc_threshold(*held_out[c.name], alpha) if c.kind is ColumnKind.text else alpha for c in tested
    }
    try:
        snapshot = _run_report(reference, current, tested, voters, thresholds, timestamp, tags, metadata)
    except ValueError as exc:
        if NO_TERMS not in str(exc):
            raise
        # Checked per column above; kept as a result should Evidently's split ever differ.
        reason = "too little variety in the text to compare (after pruning, no terms remain)"
        for column in tested:
            results[column.name] = column_drift(column, DriftStatus.insufficient_data, reason=reason)
        return Analysis(DriftStatus.insufficient_data, [results[c.name] for c in COLUMNS], reason=reason)
    scores = _scores(snapshot)
    for column in tested:
        method, score, threshold = METHODS[column.kind], scores[column.name], thresholds[column.name]
        drifted = score < threshold if method in P_VALUE_METHODS else score > threshold
        results[column.name] = column_drift(
            column, DriftStatus.ok, method=method, score=score, threshold=threshold, drifted=bool(drifted)
        )
    drifted_voters = sum(bool(results[c.name].drifted) for c in voters)
    return Analysis(
        DriftStatus.ok,
        [results[c.name] for c in COLUMNS],
        drifted=drifted_voters > 0,
        drift_share=drifted_voters / len(voters),
        snapshot=snapshot,
    )


def _run_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    tested: list[Column],
    voters: list[Column],
    thresholds: dict[str, float],
    timestamp: datetime | None,
    tags: Sequence[str],
    metadata: dict[str, Any] | None,
) -> Snapshot:
    names = [c.name for c in tested]
    definition = DataDefinition(
        text_columns=[c.name for c in tested if c.kind is ColumnKind.text],
        numerical_columns=[c.name for c in tested if c.kind is ColumnKind.numerical],
        categorical_columns=[c.name for c in tested if c.kind is ColumnKind.categorical],
    )
    others = [c for c in tested if c not in voters]
    report = Report(
        [
            DataDriftPreset(
                columns=[c.name for c in voters],
                per_column_method={c.name: METHODS[c.kind] for c in voters},
                per_column_threshold={c.name: thresholds[c.name] for c in voters},
                # Evidently's own "dataset drift" then reads as the verdict: any column drifted.
                drift_share=0.5 / len(voters),
            ),
            *(ValueDrift(column=c.name, method=METHODS[c.kind], threshold=thresholds[c.name]) for c in others),
        ],
        tags=list(tags),
        metadata=metadata or {},
    )
    return report.run(
        Dataset.from_pandas(current[names].reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(reference[names].reset_index(drop=True), data_definition=definition),
        timestamp=timestamp,
    )


def _scores(snapshot: Snapshot) -> dict[str, float]:
    """Each column's ``ValueDrift`` score in the snapshot."""
    scores: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            scores[config["column"]] = float(metric["value"])
    return scores

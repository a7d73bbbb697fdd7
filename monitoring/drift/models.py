"""Drift results: one row per check of one adapter, with its per-column scores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from switchyard.db import utcnow


def as_utc(moment: datetime) -> datetime:
    """Naive times are UTC; aware ones are converted to it."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class TimeWindow:
    """Requests logged at or after ``start`` and before ``end``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if as_utc(self.start) >= as_utc(self.end):
            raise ValueError("a window's start must be before its end")


@dataclass(frozen=True)
class Windows:
    """What to compare; a part left out takes the default (see ``DriftMonitor.check``)."""

    reference: TimeWindow | None = None
    current: TimeWindow | None = None


DEFAULT_WINDOWS = Windows()


class ColumnKind(StrEnum):
    text = "text"
    numerical = "numerical"
    categorical = "categorical"


class ColumnRole(StrEnum):
    content = "content"
    """What the traffic says: its drift decides the verdict."""
    performance = "performance"
    """How fast it was served: reported, and decides the verdict only when configured to."""


class DriftStatus(StrEnum):
    ok = "ok"
    """Compared: the verdict (``drifted``) holds."""
    insufficient_data = "insufficient_data"
    """Too few rows (or, for a column, too few values or too little variety) to compare;
    ``drifted`` is false and ``reason`` says why."""


class ReferenceKind(StrEnum):
    snapshot = "snapshot"
    """The requests behind the dataset snapshot the adapter's active version was trained on (or
    its latest curated snapshot)."""
    window = "window"
    """A baseline window pinned by the caller."""
    previous_window = "previous_window"
    """The adapter has no snapshot: the traffic just before the current window, as much of it."""


class DriftTrigger(StrEnum):
    api = "api"
    cli = "cli"
    schedule = "schedule"


class ColumnDrift(BaseModel):
    """One column's comparison, as Evidently scored it."""

    column: str
    kind: ColumnKind
    role: ColumnRole
    decides_verdict: bool
    """Whether its drift alone makes the window drifted (performance columns only when
    ``SWITCHYARD_MONITORING__DRIFT__ALERT_ON_PERFORMANCE`` is on)."""
    status: DriftStatus
    reason: str | None = None
    method: str | None = None
    """Evidently's stat test: ``ks`` (p-value), ``chi2_two_sample`` (p-value) or
    ``abs_text_content_drift`` (a domain classifier's ROC AUC)."""
    score: float | None = None
    threshold: float | None = None
    """A p-value below it, or a ROC AUC above it, is drift."""
    drifted: bool | None = None
    reference_values: int = 0
    """Non-empty values compared from the reference (after sampling)."""
    current_values: int = 0


class DriftResultBase(SQLModel):
    adapter: str = Field(max_length=64, index=True)
    status: DriftStatus
    reason: str | None = Field(default=None, sa_column=Column(Text))
    """Why the result is ``insufficient_data``."""
    drifted: bool = False
    """The verdict: a column that decides it drifted (each tested at the false-alarm rate
    divided by their number)."""
    drift_share: float | None = Field(default=None, ge=0.0, le=1.0)
    """Share of the verdict's columns that drifted (Evidently's ``DriftedColumnsCount``)."""
    columns: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Per column: :class:`ColumnDrift`."""
    reference_kind: ReferenceKind
    reference_snapshot_id: str | None = Field(default=None, max_length=128)
    reference_start: datetime | None = None
    """Oldest request time in the reference (for a snapshot: of its requests)."""
    reference_end: datetime | None = None
    current_start: datetime | None = None
    current_end: datetime | None = None
    reference_rows: int = Field(default=0, ge=0)
    """Rows in the reference window, before sampling."""
    current_rows: int = Field(default=0, ge=0)
    sample_size: int | None = Field(default=None, ge=1)
    """The most rows compared from one window, when a window was larger and was sampled; None
    when both were compared whole."""
    trigger: DriftTrigger
    duration_s: float = Field(default=0.0, ge=0.0)
    evidently_snapshot_id: str | None = Field(default=None, max_length=64)
    """The run in the Evidently workspace (project named after the adapter)."""


class DriftResultCreate(DriftResultBase):
    pass


class DriftResult(DriftResultBase, table=True):
    __tablename__ = "drift_result"
    __table_args__ = (Index("ix_drift_result_adapter_created", "adapter", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    report_file: str | None = Field(default=None, max_length=255)
    """The gzipped HTML report, relative to the reports folder; None once pruned."""


class DriftResultPublic(DriftResultBase):
    id: int
    created_at: datetime
    columns: list[ColumnDrift]  # type: ignore[assignment]
    has_report: bool


class DriftResultsPublic(SQLModel):
    data: list[DriftResultPublic]
    count: int


def to_public(row: DriftResult) -> DriftResultPublic:
    return DriftResultPublic.model_validate(row, update={"has_report": row.report_file is not None})

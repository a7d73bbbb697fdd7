"""The drift admin API's request and response bodies."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.models import NAME_PATTERN
from monitoring.drift.models import DriftResultPublic, TimeWindow, as_utc

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""Windows start after this: a typo such as year 0202 is an error, not an empty window."""


class WindowRequest(BaseModel):
    """Requests logged at or after ``start`` and before ``end`` (ISO 8601; without an offset a
    time is UTC)."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime | None = None
    """Default: now."""

    @model_validator(mode="after")
    def _ordered(self) -> WindowRequest:
        start = as_utc(self.start)
        if start < EARLIEST:
            raise ValueError(f"start must be after {EARLIEST.date().isoformat()}")
        if self.end is not None and as_utc(self.end) <= start:
            raise ValueError("end must be after start")
        return self

    def window(self) -> TimeWindow:
        return TimeWindow(as_utc(self.start), as_utc(self.end) if self.end is not None else datetime.now(UTC))


class DriftRunRequest(BaseModel):
    """What to check; an omitted part takes its default."""

    model_config = ConfigDict(extra="forbid")  # a misspelt window is an error, not a default

    adapter: str | None = Field(default=None, pattern=NAME_PATTERN)
    """The adapter to check; omitted: every adapter."""
    reference_window: WindowRequest | None = None
    """Pinned baseline; omitted: the requests of the active version's training snapshot (or the
    latest curated one), else as much traffic just before the current window."""
    current_window: WindowRequest | None = None
    """Omitted: the last ``SWITCHYARD_MONITORING__DRIFT__WINDOW_S`` seconds, or else the last
    ``SWITCHYARD_MONITORING__DRIFT__WINDOW_ROWS`` requests."""


class DriftResultView(DriftResultPublic):
    report_url: str | None = None
    """Where the Evidently HTML report is served (None: nothing was compared, or the report was
    pruned)."""


class DriftResultsView(BaseModel):
    data: list[DriftResultView]
    count: int


class ReportLink(BaseModel):
    url: str
    """Opens the report without a key (the link is the credential), until it expires."""
    expires_in: int
    """Seconds."""

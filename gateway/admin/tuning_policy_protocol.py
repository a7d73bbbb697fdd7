"""The tuning-policy admin API's request and response bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, field_validator

from switchyard.db import storable_text
from tuner.policies import TuningPolicyBase, TuningPolicyPublic


class TuningPolicyRequest(TuningPolicyBase):
    """A whole policy (``PUT`` replaces every field; an omitted one takes its default)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not a default

    @field_validator("schedule_cron")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        return storable_text(value)


class TuningPolicyView(TuningPolicyPublic):
    next_run_at: datetime | None = None
    """When the schedule next queues a refresh, per this gateway's scheduler (None: no schedule,
    or the scheduler runs in another process)."""

"""Per-adapter tuning policy: hyperparameters, the gate's thresholds, and the refresh schedule.

An adapter without a policy row is refreshed only on demand, with the configured preset's
hyperparameters and the gate's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import model_validator
from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel, select

from switchyard.db import utcnow
from tuner.gate import GatePolicy
from tuner.training import Hyperparameters, preset

PresetName = Literal["default", "demo"]
MIN_INTERVAL_S = 60
MAX_INTERVAL_S = 366 * 86_400


class TuningPolicyBase(SQLModel):
    preset: PresetName | None = None
    """Hyperparameter preset; None: the configured one (``SWITCHYARD_TUNER__PRESET``)."""
    hyperparameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Overrides on the preset (any :class:`~tuner.training.Hyperparameters` field)."""
    gate: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Overrides on the gate's defaults (any :class:`~tuner.gate.GatePolicy` field: ``margin``,
    ``forgetting_tolerance``, ``on_pass`` (``promote`` or ``canary``), ``canary_weight``, …)."""
    min_new_examples: int = Field(default=1, ge=1, le=10_000_000)
    """A scheduled refresh trains only when curation finds at least this many examples that the
    last snapshot did not hold (a forced run ignores it)."""
    schedule_interval_s: int | None = Field(default=None, ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S)
    """Refresh every this many seconds (or give ``schedule_cron``; not both)."""
    schedule_cron: str | None = Field(default=None, max_length=128)
    """Refresh on this crontab (five fields, UTC), e.g. ``0 3 * * *``."""
    enabled: bool = True
    """Whether the schedule runs (a disabled policy still gives on-demand jobs its settings)."""

    @model_validator(mode="after")
    def _one_schedule(self) -> TuningPolicyBase:
        if self.schedule_interval_s is not None and self.schedule_cron is not None:
            raise ValueError("give schedule_interval_s or schedule_cron, not both")
        return self


class TuningPolicy(TuningPolicyBase, table=True):
    __tablename__ = "tuning_policy"

    id: int | None = Field(default=None, primary_key=True)
    adapter: str = Field(max_length=64, unique=True, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class TuningPolicyPublic(TuningPolicyBase):
    adapter: str
    updated_at: datetime


@dataclass(frozen=True)
class ResolvedPolicy:
    """What a job of one adapter runs with."""

    hyperparameters: Hyperparameters
    gate: GatePolicy
    min_new_examples: int


def get_policy(*, session: Session, adapter: str) -> TuningPolicy | None:
    return session.exec(select(TuningPolicy).where(TuningPolicy.adapter == adapter)).first()


def resolve_policy(policy: TuningPolicyBase | None, *, default_preset: PresetName) -> ResolvedPolicy:
    """The policy's settings over the defaults (``ValueError`` if its overrides are invalid)."""
    if policy is None:
        return ResolvedPolicy(hyperparameters=preset(default_preset), gate=GatePolicy(), min_new_examples=1)
    return ResolvedPolicy(
        hyperparameters=preset(policy.preset or default_preset, **policy.hyperparameters),
        gate=GatePolicy.model_validate(policy.gate),
        min_new_examples=policy.min_new_examples,
    )

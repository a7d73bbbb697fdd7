"""Per-adapter tuning policy: hyperparameters, the gate's thresholds, and the refresh schedule.

An adapter without a policy row is refreshed only on demand, with the configured preset's
hyperparameters and the gate's defaults.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ValidationError, model_validator
from sqlalchemy import JSON, Column, String
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from adapters.registry import require_adapter
from switchyard.db import utcnow
from tuner.exceptions import InvalidPolicy
from tuner.gate import GatePolicy
from tuner.training import PRESETS, Hyperparameters, preset

PresetName = Literal["default", "demo"]
MIN_INTERVAL_S = 60
MAX_INTERVAL_S = 366 * 86_400


class TuningPolicyBase(SQLModel):
    preset: PresetName | None = Field(default=None, sa_type=String(16))
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
    refresh_on_drift: bool = False
    """Queue a refresh (trigger ``drift``) when the drift monitor finds the adapter's traffic
    drifted, unless a job of the adapter is already queued or running."""

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


# -- writing policies ----------------------------------------------------------------------

CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_WEEKDAY_ITEM = re.compile(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?")


def _crontab_weekdays(field: str) -> str:
    """The day-of-week field with crontab's numbers (0 and 7 are Sunday) spelt as names.

    APScheduler 3 numbers weekdays from Monday, so ``0 3 * * 1`` would run on Tuesdays; names
    mean the same to both. Numeric items (``1-5``, ``*/2``, ``0,6``) become explicit lists."""
    items = []
    for item in field.split(","):
        match = _WEEKDAY_ITEM.fullmatch(item)
        if item == "*" or match is None:  # names, or something APScheduler will refuse itself
            items.append(item)
            continue
        start, end, step = match.groups()
        if start == "*" and end is not None:
            raise ValueError(f"bad day-of-week item {item!r}")
        first = 0 if start == "*" else int(start)
        open_ended = start == "*" or step is not None  # ``*`` and ``N/step`` run to the field's end
        last = int(end) if end is not None else (7 if open_ended else first)
        if last > 7 or first > last or (step is not None and int(step) < 1):
            raise ValueError(f"bad day-of-week item {item!r} (0-7, 0 and 7 are Sunday)")
        days = range(first, last + 1, int(step or 1))
        items.append(",".join(dict.fromkeys(CRON_WEEKDAYS[day % 7] for day in days)))
    return ",".join(items)


def cron_trigger(expression: str) -> CronTrigger:
    """``expression`` (five crontab fields, UTC) as APScheduler's trigger; :class:`InvalidPolicy`
    if it does not parse or can never fire (``0 0 31 2 *``)."""
    fields = expression.split()
    try:
        if len(fields) != 5:
            raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
        fields[4] = _crontab_weekdays(fields[4])
        trigger = CronTrigger.from_crontab(" ".join(fields), timezone="UTC")
    except ValueError as exc:
        raise InvalidPolicy(f"schedule_cron {expression!r} is not a crontab: {exc}", param="schedule_cron") from None
    if trigger.get_next_fire_time(None, utcnow()) is None:
        raise InvalidPolicy(f"schedule_cron {expression!r} never fires", param="schedule_cron")
    return trigger


def _checked_overrides(model: type[BaseModel], base: dict[str, Any], overrides: dict[str, Any], name: str) -> dict:
    """``overrides`` as ``model`` normalizes them over ``base``; :class:`InvalidPolicy` names the
    first bad one (``param`` is ``name.field``)."""
    unknown = [key for key in overrides if key not in model.model_fields]
    if unknown:
        raise InvalidPolicy(
            f"{name} has no field {unknown[0]!r}; known: {', '.join(model.model_fields)}",
            param=f"{name}.{unknown[0]}",
        )
    try:
        validated = model.model_validate({**base, **overrides})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in (name, *error["loc"]))
        raise InvalidPolicy(f"{where}: {error['msg']}", param=where) from None
    checked = validated.model_dump(mode="json", include=set(overrides))
    try:  # the JSON column (PostgreSQL's json above all) refuses NaN and Infinity
        json.dumps(checked, allow_nan=False)
    except ValueError:
        raise InvalidPolicy(f"{name} overrides must be finite numbers", param=name) from None
    return checked


def validate_policy(policy_in: TuningPolicyBase) -> TuningPolicyBase:
    """``policy_in`` with its overrides checked and normalized; :class:`InvalidPolicy` otherwise.

    Checked when a policy is written, so a bad one is the writer's error, never a scheduler or
    worker failure later."""
    base = PRESETS[policy_in.preset or "default"].model_dump()
    hyperparameters = _checked_overrides(Hyperparameters, base, policy_in.hyperparameters, "hyperparameters")
    gate = _checked_overrides(GatePolicy, {}, policy_in.gate, "gate")
    if policy_in.schedule_cron is not None:
        cron_trigger(policy_in.schedule_cron)
    return TuningPolicyBase.model_validate(policy_in.model_dump() | {"hyperparameters": hyperparameters, "gate": gate})


def _write(session: Session, adapter: str, values: dict[str, Any]) -> TuningPolicy:
    row = get_policy(session=session, adapter=adapter)
    if row is None:
        row = TuningPolicy(adapter=adapter, **values)
    else:
        row.sqlmodel_update(values | {"updated_at": utcnow()})
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def upsert_policy(*, session: Session, adapter: str, policy_in: TuningPolicyBase) -> TuningPolicy:
    """Create or replace (every field) the policy of an existing adapter."""
    require_adapter(session=session, name=adapter)
    values = validate_policy(policy_in).model_dump()
    try:
        return _write(session, adapter, values)
    except IntegrityError:  # another writer created it between the read and the insert: replace theirs
        session.rollback()
        return _write(session, adapter, values)


def delete_policy(*, session: Session, adapter: str) -> bool:
    """Remove the adapter's policy (its schedule with it); False if it had none."""
    row = get_policy(session=session, adapter=adapter)
    if row is None:
        return False
    session.delete(row)
    session.commit()
    return True


def list_policies(*, session: Session) -> list[TuningPolicy]:
    return list(session.exec(select(TuningPolicy).order_by(col(TuningPolicy.adapter))))

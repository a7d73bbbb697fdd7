"""Queries on fine-tuning jobs: the queue, the tenant-scoped reads, events and checkpoints."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from switchyard.db import utcnow
from tuner.exceptions import JobConflict, TuningResourceNotFound
from tuner.jobs.models import (
    ENDED,
    JobOutcome,
    JobStage,
    JobStatus,
    TuningCheckpoint,
    TuningJob,
    TuningJobBase,
    TuningJobEvent,
)

MAX_EVENT_MESSAGE = 4000
ACTIVE = (JobStatus.validating_files, JobStatus.queued, JobStatus.running)


class AnyTenant:
    """The admin's view: every tenant's jobs."""


ANY_TENANT = AnyTenant()
TenantScope = str | None | AnyTenant
"""Whose rows a caller sees: one tenant (None is the tenant of keys without one), or any."""


def new_public_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def _tenant_is(column: Any, tenant: str | None) -> ColumnElement[bool]:
    # None is a tenant of its own (keys without one), never "any tenant".
    return column == tenant if tenant is not None else col(column).is_(None)


def _visible(scope: TenantScope) -> list[ColumnElement[bool]]:
    return [] if isinstance(scope, AnyTenant) else [_tenant_is(TuningJob.tenant, scope)]


def create_job(*, session: Session, job_in: TuningJobBase, key_id: int | None = None) -> TuningJob:
    job = TuningJob.model_validate(job_in, update={"public_id": new_public_id("ftjob"), "key_id": key_id})
    session.add(job)
    session.flush()
    add_event(session=session, job=job, message=f"Created fine-tuning job: {job.public_id}")
    session.commit()
    session.refresh(job)
    return job


def get_job(*, session: Session, public_id: str, scope: TenantScope = ANY_TENANT) -> TuningJob:
    """The job, if ``scope`` may see it; another tenant's job is :class:`TuningResourceNotFound`."""
    job = session.exec(select(TuningJob).where(TuningJob.public_id == public_id, *_visible(scope))).first()
    if job is None:
        raise TuningResourceNotFound(f"No fine-tuning job with id '{public_id}'.", param="fine_tuning_job_id")
    return job


def _page_after(
    model: Any, public_id: str | None, where: Sequence[ColumnElement[bool]], session: Session
) -> list[ColumnElement[bool]]:
    """``where``, plus: older than the row named ``public_id`` (pages go newest first)."""
    conditions = list(where)
    if public_id is not None:
        anchor = session.exec(select(model.id).where(model.public_id == public_id, *where)).first()
        if anchor is None:
            return [*conditions, col(model.id) < 0]  # an unknown cursor: an empty page, not an error
        conditions.append(col(model.id) < anchor)
    return conditions


def list_jobs(
    *,
    session: Session,
    scope: TenantScope = ANY_TENANT,
    after: str | None = None,
    limit: int = 20,
    adapter: str | None = None,
    metadata: dict[str, str] | None = None,
) -> tuple[list[TuningJob], bool]:
    """A page of jobs, newest first, and whether more follow."""
    where = _visible(scope)
    if adapter is not None:
        where.append(TuningJob.adapter == adapter)
    conditions = _page_after(TuningJob, after, where, session)
    statement = select(TuningJob).where(*conditions).order_by(col(TuningJob.id).desc())
    if metadata:
        # Filtered here: JSON containment has no portable SQL between SQLite and PostgreSQL.
        rows = [j for j in session.exec(statement) if all((j.metadata_ or {}).get(k) == v for k, v in metadata.items())]
        return rows[:limit], len(rows) > limit
    rows = list(session.exec(statement.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def active_job(*, session: Session, adapter: str) -> TuningJob | None:
    """The adapter's queued or running job, if any (the oldest)."""
    return session.exec(
        select(TuningJob)
        .where(TuningJob.adapter == adapter, col(TuningJob.status).in_(ACTIVE))
        .order_by(col(TuningJob.id))
    ).first()


def add_event(
    *,
    session: Session,
    job: TuningJob,
    message: str,
    level: str = "info",
    type: str = "message",
    data: dict[str, Any] | None = None,
) -> TuningJobEvent:
    """Add an event to the caller's transaction (the caller commits)."""
    assert job.id is not None
    event = TuningJobEvent(job_id=job.id, level=level, type=type, message=message[:MAX_EVENT_MESSAGE], data=data)
    session.add(event)
    return event


def list_events(
    *, session: Session, job: TuningJob, after: str | None = None, limit: int = 20
) -> tuple[list[TuningJobEvent], bool]:
    """A page of the job's events, newest first (OpenAI's order); ``after`` is an event id."""
    where = [TuningJobEvent.job_id == job.id]
    if after is not None:
        number = event_number(after)
        where.append(col(TuningJobEvent.id) < (number if number is not None else 0))
    rows = list(
        session.exec(select(TuningJobEvent).where(*where).order_by(col(TuningJobEvent.id).desc()).limit(limit + 1))
    )
    return rows[:limit], len(rows) > limit


def events_since(*, session: Session, job: TuningJob, after_id: int = 0) -> list[TuningJobEvent]:
    """The job's events after ``after_id``, oldest first (for followers such as the CLI)."""
    return list(
        session.exec(
            select(TuningJobEvent)
            .where(TuningJobEvent.job_id == job.id, col(TuningJobEvent.id) > after_id)
            .order_by(col(TuningJobEvent.id))
        )
    )


def event_public_id(event: TuningJobEvent) -> str:
    return f"ftevent-{event.id}"


def event_number(public_id: str) -> int | None:
    prefix, _, number = public_id.partition("-")
    return int(number) if prefix == "ftevent" and number.isdigit() and len(number) < 12 else None


def add_checkpoint(
    *, session: Session, job: TuningJob, step: int, metrics: dict[str, Any], path: str
) -> TuningCheckpoint:
    assert job.id is not None
    existing = session.exec(
        select(TuningCheckpoint).where(TuningCheckpoint.job_id == job.id, TuningCheckpoint.step == step)
    ).first()
    if existing is not None:  # a resumed run saves the same step again
        return existing
    checkpoint = TuningCheckpoint(
        public_id=new_public_id("ftckpt"), job_id=job.id, step=step, metrics=metrics, path=path
    )
    session.add(checkpoint)
    return checkpoint


def list_checkpoints(
    *, session: Session, job: TuningJob, after: str | None = None, limit: int = 10
) -> tuple[list[TuningCheckpoint], bool]:
    where = [TuningCheckpoint.job_id == job.id]
    conditions = _page_after(TuningCheckpoint, after, where, session)
    rows = list(
        session.exec(
            select(TuningCheckpoint).where(*conditions).order_by(col(TuningCheckpoint.id).desc()).limit(limit + 1)
        )
    )
    return rows[:limit], len(rows) > limit


# -- the queue ------------------------------------------------------------------------------


def claim_next(*, session: Session, worker: str, busy_adapters: frozenset[str] = frozenset()) -> TuningJob | None:
    """Atomically take the oldest queued job whose adapter has no running job, for ``worker``.

    The conditional update is what makes it safe with several workers: only one of them changes
    the row from ``queued``. Never two trainings of one adapter at once: a job waits while another
    job of its adapter runs anywhere (the partial unique index on running rows holds it even when
    two workers race), or is being started by this worker (``busy_adapters``)."""
    running = select(TuningJob.adapter).where(TuningJob.status == JobStatus.running)
    busy = set(session.exec(running)) | set(busy_adapters)
    queued = session.exec(
        select(TuningJob).where(TuningJob.status == JobStatus.queued).order_by(col(TuningJob.id))
    ).all()
    for job in queued:
        if job.adapter in busy:
            continue
        now = utcnow()
        try:
            result = session.exec(  # type: ignore[call-overload]
                update(TuningJob)
                .where(col(TuningJob.id) == job.id, col(TuningJob.status) == JobStatus.queued)
                .values(
                    status=JobStatus.running,
                    worker=worker,
                    heartbeat_at=now,
                    started_at=job.started_at or now,
                    attempts=TuningJob.attempts + 1,
                )
            )
        except IntegrityError:  # another worker started a job of this adapter meanwhile
            session.rollback()
            busy.add(job.adapter)
            continue
        if result.rowcount == 1:
            session.commit()
            session.refresh(job)
            return job
        session.rollback()
    return None


@dataclass(frozen=True)
class Heartbeat:
    cancel_requested: list[str]
    """Jobs of this worker whose cancel was requested."""
    lost: list[str]
    """Jobs this worker runs but no longer owns (they were taken for orphans and given to another
    worker, or ended elsewhere): it must stop them without writing anything more."""


def heartbeat(*, session: Session, job_ids: Sequence[int], worker: str) -> Heartbeat:
    """Mark this worker's running ``job_ids`` alive, and report what it must act on."""
    if not job_ids:
        return Heartbeat(cancel_requested=[], lost=[])
    session.exec(  # type: ignore[call-overload]
        update(TuningJob)
        .where(col(TuningJob.id).in_(job_ids), TuningJob.worker == worker, TuningJob.status == JobStatus.running)
        .values(heartbeat_at=utcnow())
    )
    session.commit()
    rows = session.exec(select(TuningJob).where(col(TuningJob.id).in_(job_ids))).all()
    owned = [job for job in rows if job.worker == worker and job.status == JobStatus.running]
    return Heartbeat(
        cancel_requested=[job.public_id for job in owned if job.cancel_requested],
        lost=[job.public_id for job in rows if job not in owned],
    )


def requeue_orphans(*, session: Session, stale_before: datetime, worker: str) -> list[TuningJob]:
    """Queue again the running jobs of other workers that stopped reporting before
    ``stale_before`` (their process died): they resume from their last checkpoint. A cancel
    requested meanwhile ends them instead. Each change is conditional on the row still being
    stale, so a worker that reported in the meantime keeps its job."""
    stale = (
        (TuningJob.status == JobStatus.running)
        & (col(TuningJob.worker).is_(None) | (col(TuningJob.worker) != worker))
        & (col(TuningJob.heartbeat_at).is_(None) | (col(TuningJob.heartbeat_at) < stale_before))
    )
    orphans = session.exec(select(TuningJob).where(stale)).all()
    changed = []
    for job in orphans:
        values: dict[str, Any]
        if job.cancel_requested:
            values = {"status": JobStatus.cancelled, "stage": None, "finished_at": utcnow()}
            message, level = "Job cancelled (its worker had stopped)", "info"
        else:
            values = {"status": JobStatus.queued, "stage": None, "worker": None}
            message = f"The worker running this job ({job.worker or 'unknown'}) stopped; queued to resume"
            level = "warn"
        result = session.exec(update(TuningJob).where(col(TuningJob.id) == job.id, stale).values(**values))  # type: ignore[call-overload]
        if result.rowcount == 1:
            add_event(session=session, job=job, message=message, level=level)
            changed.append(job)
    session.commit()
    for job in changed:
        session.refresh(job)
    return changed


def requeue(*, session: Session, worker: str, reason: str) -> None:
    """Queue again every running job of ``worker`` (it stops them to shut down, or claimed one
    it never started)."""
    running = select(TuningJob).where(TuningJob.status == JobStatus.running, TuningJob.worker == worker)
    for job in session.exec(running).all():
        add_event(session=session, job=job, level="warn", message=reason)
        job.status, job.stage, job.worker = JobStatus.queued, None, None
        session.add(job)
    session.commit()


def request_cancel(*, session: Session, public_id: str, scope: TenantScope = ANY_TENANT) -> TuningJob:
    """Cancel a job: a queued one ends at once, a running one when its worker sees the request.

    Both are conditional updates, so a worker claiming the job at the same moment cannot make
    the cancel vanish: whichever state the row is in when the update runs is the one acted on."""
    job = get_job(session=session, public_id=public_id, scope=scope)
    ended = session.exec(  # type: ignore[call-overload]
        update(TuningJob)
        .where(col(TuningJob.id) == job.id, col(TuningJob.status).in_((JobStatus.queued, JobStatus.validating_files)))
        .values(status=JobStatus.cancelled, stage=None, finished_at=utcnow(), cancel_requested=True)
    )
    changed = ended.rowcount == 1
    if changed:
        add_event(session=session, job=job, message="Job cancelled before it started")
    else:
        flagged = session.exec(  # type: ignore[call-overload]
            update(TuningJob)
            .where(col(TuningJob.id) == job.id, TuningJob.status == JobStatus.running, ~col(TuningJob.cancel_requested))
            .values(cancel_requested=True)
        )
        if flagged.rowcount == 1:
            add_event(session=session, job=job, message="Cancellation requested")
    session.commit()
    session.refresh(job)
    if job.status in ENDED and not changed:
        raise JobConflict(f"Job {public_id} has already {job.status.value}; it cannot be cancelled.", param=None)
    return job


def set_stage(*, session: Session, job: TuningJob, stage: JobStage, message: str, **fields: Any) -> None:
    job.stage = stage
    for name, value in fields.items():
        setattr(job, name, value)
    add_event(session=session, job=job, message=message)
    session.add(job)
    session.commit()


def _end(job: TuningJob, status: JobStatus) -> None:
    job.status, job.stage, job.finished_at = status, None, utcnow()


def finish_job(
    *,
    session: Session,
    job: TuningJob,
    status: JobStatus,
    message: str,
    level: str = "info",
    outcome: JobOutcome | None = None,
    error: tuple[str, str, str | None] | None = None,
    **fields: Any,
) -> TuningJob:
    """End the job (``error`` is code, message, param for a failed one). A job that has already
    ended (a cancel that won a race) keeps its first ending; the row is returned either way."""
    # Re-read (the caller's copy may come from another session, or be stale): a job that has
    # already ended keeps its first ending.
    job = session.exec(select(TuningJob).where(TuningJob.id == job.id).execution_options(populate_existing=True)).one()
    if job.status in ENDED:
        return job
    _end(job, status)
    job.outcome = outcome
    if error is not None:
        job.error_code, job.error_message, job.error_param = error
    for name, value in fields.items():
        setattr(job, name, value)
    add_event(session=session, job=job, message=message, level=level)
    session.add(job)
    session.commit()
    session.refresh(job)
    return job

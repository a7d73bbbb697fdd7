"""The job queue on SQLite and PostgreSQL: claiming, one training per adapter, heartbeats and
orphans, cancellation, and tenant-scoped, paginated reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from switchyard.db import utcnow
from tuner.exceptions import JobConflict, TuningResourceNotFound
from tuner.jobs import crud
from tuner.jobs.models import JobStatus, JobTrigger, TuningJob, TuningJobBase


def queue(session: Session, adapter: str = "bot", *, tenant: str | None = None, **fields: object) -> TuningJob:
    job_in = TuningJobBase(adapter=adapter, tenant=tenant, model=adapter, trigger=JobTrigger.api, **fields)
    return crud.create_job(session=session, job_in=job_in)


def test_claims_are_exclusive_and_one_adapter_trains_once_at_a_time(db: Engine) -> None:
    with Session(db, expire_on_commit=False) as session:
        first = queue(session, "bot")
        second = queue(session, "bot")
        other = queue(session, "other")
    with Session(db, expire_on_commit=False) as a, Session(db, expire_on_commit=False) as b:
        claimed = crud.claim_next(session=a, worker="a")
        assert claimed is not None and claimed.public_id == first.public_id
        assert claimed.status == JobStatus.running and claimed.attempts == 1
        # The second job of "bot" waits while the first runs, whoever asks.
        following = crud.claim_next(session=b, worker="b")
        assert following is not None and following.public_id == other.public_id
        assert crud.claim_next(session=b, worker="b") is None
    with Session(db, expire_on_commit=False) as session:
        job = crud.get_job(session=session, public_id=first.public_id)
        crud.finish_job(session=session, job=job, status=JobStatus.succeeded, message="done")
        claimed = crud.claim_next(session=session, worker="a")
        assert claimed is not None and claimed.public_id == second.public_id


def test_busy_adapters_of_the_claiming_worker_wait(db: Engine) -> None:
    with Session(db, expire_on_commit=False) as session:
        queue(session, "bot")
        assert crud.claim_next(session=session, worker="a", busy_adapters=frozenset({"bot"})) is None


def test_orphans_are_queued_again_and_resume_while_live_jobs_stay(db: Engine) -> None:
    with Session(db, expire_on_commit=False) as session:
        stale, live, cancelled = queue(session, "a"), queue(session, "b"), queue(session, "c")
        for _ in range(3):
            crud.claim_next(session=session, worker="dead")
        crud.request_cancel(session=session, public_id=cancelled.public_id)
        assert crud.heartbeat(session=session, job_ids=[live.id], worker="dead") == crud.Heartbeat([], [])
        old = utcnow() - timedelta(minutes=10)
        for job in (crud.get_job(session=session, public_id=j.public_id) for j in (stale, cancelled)):
            job.heartbeat_at = old
            session.add(job)
        session.commit()

        requeued = crud.requeue_orphans(session=session, stale_before=utcnow() - timedelta(minutes=1), worker="new")
        assert {j.public_id for j in requeued} == {stale.public_id, cancelled.public_id}
        statuses = {
            j.public_id: crud.get_job(session=session, public_id=j.public_id).status for j in (stale, live, cancelled)
        }
        assert statuses == {
            stale.public_id: JobStatus.queued,
            live.public_id: JobStatus.running,
            cancelled.public_id: JobStatus.cancelled,
        }
        resumed = crud.claim_next(session=session, worker="new")
        assert resumed is not None and resumed.public_id == stale.public_id and resumed.attempts == 2
        # The old worker, if it was only slow, learns that the job is no longer its own.
        beat = crud.heartbeat(session=session, job_ids=[stale.id, live.id], worker="dead")
        assert beat.lost == [stale.public_id] and beat.cancel_requested == []
        messages = [e.message for e in crud.events_since(session=session, job=resumed)]
        assert any("stopped; queued to resume" in m for m in messages)


def test_cancel_ends_a_queued_job_and_flags_a_running_one(db: Engine) -> None:
    with Session(db, expire_on_commit=False) as session:
        running, waiting = queue(session, "a"), queue(session, "b")
        crud.claim_next(session=session, worker="w", busy_adapters=frozenset({"b"}))
        assert crud.request_cancel(session=session, public_id=waiting.public_id).status == JobStatus.cancelled
        flagged = crud.request_cancel(session=session, public_id=running.public_id)
        assert flagged.status == JobStatus.running and flagged.cancel_requested
        assert crud.heartbeat(session=session, job_ids=[running.id], worker="w").cancel_requested == [running.public_id]
        with pytest.raises(JobConflict):
            crud.request_cancel(session=session, public_id=waiting.public_id)


def test_reads_are_scoped_to_the_tenant_and_paginated_newest_first(db: Engine) -> None:
    with Session(db, expire_on_commit=False) as session:
        acme = [queue(session, f"bot{i}", tenant="acme", metadata_={"n": str(i)}) for i in range(5)]
        mine = queue(session, "bot", tenant=None)
    with Session(db, expire_on_commit=False) as session:
        page, more = crud.list_jobs(session=session, scope="acme", limit=2)
        assert [j.public_id for j in page] == [acme[4].public_id, acme[3].public_id] and more
        page, more = crud.list_jobs(session=session, scope="acme", after=page[-1].public_id, limit=10)
        assert [j.public_id for j in page] == [j.public_id for j in reversed(acme[:3])] and not more
        assert [j.public_id for j in crud.list_jobs(session=session, scope=None)[0]] == [mine.public_id]
        assert len(crud.list_jobs(session=session, scope=crud.ANY_TENANT)[0]) == 6
        assert crud.list_jobs(session=session, scope="acme", metadata={"n": "2"})[0][0].public_id == acme[2].public_id
        # Another tenant's id reads exactly like a missing one, and is no cursor either.
        with pytest.raises(TuningResourceNotFound):
            crud.get_job(session=session, public_id=mine.public_id, scope="acme")
        with pytest.raises(TuningResourceNotFound):
            crud.request_cancel(session=session, public_id=acme[0].public_id, scope="globex")
        assert crud.list_jobs(session=session, scope="acme", after=mine.public_id) == ([], False)


def test_events_page_newest_first_and_checkpoints_are_recorded_once(db: Engine) -> None:
    with Session(db, expire_on_commit=False) as session:
        job = queue(session)
        for step in range(5):
            crud.add_event(session=session, job=job, message=f"step {step}", type="metrics", data={"step": step})
            crud.add_checkpoint(session=session, job=job, step=step, metrics={"step": step}, path=f"/c/{step}")
        crud.add_checkpoint(session=session, job=job, step=4, metrics={}, path="/c/4")  # a resumed run
        session.commit()
        events, more = crud.list_events(session=session, job=job, limit=3)
        assert [e.message for e in events] == ["step 4", "step 3", "step 2"] and more
        events, more = crud.list_events(session=session, job=job, after=crud.event_public_id(events[-1]), limit=10)
        assert [e.message for e in events][:2] == ["step 1", "step 0"] and not more
        checkpoints, _ = crud.list_checkpoints(session=session, job=job, limit=10)
        assert [c.step for c in checkpoints] == [4, 3, 2, 1, 0]
        assert crud.list_events(session=session, job=job, after="ftevent-x")[0] == []


def test_the_database_refuses_two_running_jobs_of_one_adapter(db: Engine) -> None:
    """What holds "one training per adapter" when two workers claim at the same moment."""
    with Session(db, expire_on_commit=False) as session:
        queue(session, "bot")
        second = queue(session, "bot")
        assert crud.claim_next(session=session, worker="a") is not None
        with pytest.raises(IntegrityError):
            session.exec(update(TuningJob).where(TuningJob.id == second.id).values(status=JobStatus.running))
            session.commit()

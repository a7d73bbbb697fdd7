"""The refresh schedule: real APScheduler on a persistent job store in the project database
(SQLite and PostgreSQL), surviving a restart, coalescing, and following the policies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import select

from switchyard.config import TunerSettings
from switchyard.db import make_engine, session_scope
from tests.utils.tuning import add_adapter
from tuner import scheduling
from tuner.exceptions import InvalidPolicy
from tuner.jobs.crud import finish_job
from tuner.jobs.models import JobOutcome, JobStatus, JobTrigger, TuningJob
from tuner.policies import TuningPolicyBase, delete_policy, get_policy, resolve_policy, upsert_policy
from tuner.scheduling import JOBSTORE, TABLE, RefreshScheduler, job_id, queue_scheduled_refresh

HOUR = 3600
SETTINGS = TunerSettings(misfire_grace_s=600)


def put_policy(db: Engine, adapter: str, **fields: object) -> None:
    with session_scope(db) as session:
        upsert_policy(session=session, adapter=adapter, policy_in=TuningPolicyBase.model_validate(fields))


def jobs_of(db: Engine, adapter: str) -> list[TuningJob]:
    with session_scope(db) as session:
        return list(session.exec(select(TuningJob).where(TuningJob.adapter == adapter).order_by(TuningJob.id)))


def stored_ids(db: Engine) -> list[str]:
    """What the job store holds, read straight from its table."""
    with db.connect() as connection:
        return sorted(connection.execute(text(f"SELECT id FROM {TABLE}")).scalars())


def reopen(db: Engine) -> Engine:
    """A second engine on the same database, as a restarted process would have."""
    return make_engine(db.url.render_as_string(hide_password=False))


async def eventually(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def stop(refresh: RefreshScheduler) -> None:
    refresh.shutdown()
    await eventually(lambda: not refresh.running)  # APScheduler stops on the loop's next turn


async def test_a_run_due_while_no_process_ran_fires_after_a_restart(db: Engine) -> None:
    add_adapter(db, "bot", tenant="acme")
    put_policy(db, "bot", schedule_interval_s=HOUR, hyperparameters={"n_epochs": 2})
    first = RefreshScheduler(db, SETTINGS, "demo")
    first.start()
    assert stored_ids(db) == ["refresh:bot"]
    next_run = first.next_run_time("bot")
    assert next_run is not None and timedelta(minutes=59) < next_run - datetime.now(UTC) <= timedelta(hours=1)
    job = first.scheduler.get_job(job_id("bot"), jobstore=JOBSTORE)
    assert (job.func_ref, job.args, job.max_instances, job.coalesce) == (
        "tuner.scheduling:enqueue_refresh",
        ("bot",),
        1,
        True,
    )
    assert job.misfire_grace_time == 600

    # The next run falls due a moment after the process stops.
    first.scheduler.modify_job(
        job_id("bot"), jobstore=JOBSTORE, next_run_time=datetime.now(UTC) + timedelta(seconds=0.3)
    )
    await stop(first)
    await asyncio.sleep(0.6)
    assert jobs_of(db, "bot") == []

    restarted_db = reopen(db)
    second = RefreshScheduler(restarted_db, SETTINGS, "demo")
    try:
        second.start()
        await eventually(lambda: len(jobs_of(db, "bot")) == 1)
        [queued] = jobs_of(db, "bot")
        assert (queued.trigger, queued.status, queued.force) == (JobTrigger.schedule, JobStatus.queued, False)
        assert (queued.tenant, queued.model) == ("acme", "bot")
        with session_scope(db) as session:
            from_policy = resolve_policy(get_policy(session=session, adapter="bot"), default_preset="demo")
        assert queued.hyperparameters == from_policy.hyperparameters.model_dump()
        assert queued.hyperparameters["n_epochs"] == 2
        # Fired once, and the schedule goes on from now.
        await eventually(lambda: (second.next_run_time("bot") or datetime.now(UTC)) > datetime.now(UTC))
        assert stored_ids(db) == ["refresh:bot"]
    finally:
        await stop(second)
        restarted_db.dispose()


async def test_an_unchanged_schedule_keeps_its_next_run_across_restarts(db: Engine) -> None:
    add_adapter(db, "bot")
    put_policy(db, "bot", schedule_interval_s=HOUR)
    first = RefreshScheduler(db, SETTINGS, "demo")
    first.start()
    planned = first.next_run_time("bot")
    await stop(first)
    await asyncio.sleep(0.05)

    restarted_db = reopen(db)
    second = RefreshScheduler(restarted_db, SETTINGS, "demo")
    second.start()
    try:
        assert second.next_run_time("bot") == planned  # not re-created (that would move it later)
        assert second.sync() == scheduling.SyncResult()
    finally:
        await stop(second)
        restarted_db.dispose()


async def test_an_active_job_coalesces_the_next_firing(db: Engine) -> None:
    add_adapter(db, "bot")
    put_policy(db, "bot", schedule_interval_s=HOUR)
    refresh = RefreshScheduler(db, SETTINGS, "default")
    refresh.start()
    try:
        for _ in range(3):  # three firings while the first job is still queued
            refresh.scheduler.modify_job(job_id("bot"), jobstore=JOBSTORE, next_run_time=datetime.now(UTC))
            await eventually(lambda: len(jobs_of(db, "bot")) == 1)
            await asyncio.sleep(0.3)
        assert len(jobs_of(db, "bot")) == 1

        with session_scope(db) as session:  # once it has ended, the next firing queues again
            finish_job(
                session=session,
                job=jobs_of(db, "bot")[0],
                status=JobStatus.succeeded,
                message="done",
                outcome=JobOutcome.skipped,
            )
        refresh.scheduler.modify_job(job_id("bot"), jobstore=JOBSTORE, next_run_time=datetime.now(UTC))
        await eventually(lambda: len(jobs_of(db, "bot")) == 2)
    finally:
        await stop(refresh)


def test_queueing_is_skipped_when_the_schedule_is_gone_or_a_job_is_active(db: Engine) -> None:
    add_adapter(db, "bot")
    with session_scope(db) as session:
        assert queue_scheduled_refresh(session=session, adapter="bot", default_preset="demo") is None  # no policy
    put_policy(db, "bot", schedule_interval_s=HOUR, enabled=False)
    with session_scope(db) as session:
        assert queue_scheduled_refresh(session=session, adapter="bot", default_preset="demo") is None  # disabled
    put_policy(db, "bot", schedule_interval_s=HOUR)
    with session_scope(db) as session:
        first = queue_scheduled_refresh(session=session, adapter="bot", default_preset="demo")
        assert first is not None and first.trigger == JobTrigger.schedule
        assert queue_scheduled_refresh(session=session, adapter="bot", default_preset="demo") is None  # active
    assert len(jobs_of(db, "bot")) == 1


async def test_sync_follows_the_policies(db: Engine) -> None:
    add_adapter(db, "bot")
    add_adapter(db, "other")
    refresh = RefreshScheduler(db, SETTINGS, "demo")
    refresh.start()
    try:
        assert stored_ids(db) == []
        put_policy(db, "bot", schedule_interval_s=HOUR)
        put_policy(db, "other", min_new_examples=5)  # no schedule: no job
        assert refresh.sync() == scheduling.SyncResult(added=["bot"])
        assert stored_ids(db) == ["refresh:bot"]

        put_policy(db, "bot", schedule_interval_s=HOUR, enabled=False)
        assert refresh.sync() == scheduling.SyncResult(removed=["bot"])
        assert stored_ids(db) == []

        put_policy(db, "bot", schedule_interval_s=HOUR)
        assert refresh.sync().added == ["bot"]
        put_policy(db, "bot", schedule_cron="0 3 * * *")
        assert refresh.sync() == scheduling.SyncResult(replaced=["bot"])
        fire = refresh.next_run_time("bot")
        assert fire is not None and (fire.hour, fire.minute) == (3, 0)

        with session_scope(db) as session:
            delete_policy(session=session, adapter="bot")
        assert refresh.sync() == scheduling.SyncResult(removed=["bot"])
        assert stored_ids(db) == []
    finally:
        await stop(refresh)


async def test_a_deleted_adapter_loses_its_schedule(db: Engine) -> None:
    adapter = add_adapter(db, "bot")
    put_policy(db, "bot", schedule_interval_s=HOUR)
    refresh = RefreshScheduler(db, SETTINGS, "demo")
    refresh.start()
    try:
        assert stored_ids(db) == ["refresh:bot"]
        with session_scope(db) as session:
            session.delete(session.merge(adapter))
            session.commit()
        assert refresh.sync() == scheduling.SyncResult(removed=["bot"])
        assert stored_ids(db) == []
    finally:
        await stop(refresh)


async def test_policies_written_elsewhere_are_picked_up_periodically(db: Engine) -> None:
    add_adapter(db, "bot")
    refresh = RefreshScheduler(db, SETTINGS, "demo", sync_interval_s=0.2)
    refresh.start()
    try:
        put_policy(db, "bot", schedule_cron="15 4 * * 1")  # as the CLI does: straight to the database
        await eventually(lambda: stored_ids(db) == ["refresh:bot"])
        fire = refresh.next_run_time("bot")
        assert fire is not None and fire.isoweekday() == 1
        put_policy(db, "bot", schedule_cron="15 4 * * 1", enabled=False)
        await eventually(lambda: stored_ids(db) == [])
    finally:
        await stop(refresh)


def test_bad_cron_is_refused_before_it_reaches_the_scheduler(db: Engine) -> None:
    add_adapter(db, "bot")
    with pytest.raises(InvalidPolicy) as raised:
        put_policy(db, "bot", schedule_cron="every day at 3")
    assert raised.value.param == "schedule_cron"
    with session_scope(db) as session:
        assert get_policy(session=session, adapter="bot") is None


def test_a_firing_without_a_scheduler_in_the_process_does_nothing(db: Engine) -> None:
    add_adapter(db, "bot")
    put_policy(db, "bot", schedule_interval_s=HOUR)
    assert scheduling._database is None
    scheduling.enqueue_refresh("bot")
    assert jobs_of(db, "bot") == []


FIRED: list[str] = []


def record_firing() -> None:
    """An extra job's function, as another package would give it (by its textual reference)."""
    FIRED.append("fired")


async def test_extra_jobs_are_stored_kept_across_restarts_and_removed(db: Engine) -> None:
    spec = scheduling.PersistentJob(
        id="drift-check",
        func="tests.tuner.test_scheduling:record_firing",
        trigger=scheduling.IntervalTrigger(seconds=HOUR),
    )
    first = RefreshScheduler(db, SETTINGS, "demo", extra_jobs=[spec])
    first.start()
    assert stored_ids(db) == ["drift-check"]
    planned = first.scheduler.get_job("drift-check", jobstore=JOBSTORE).next_run_time
    first.sync()  # the refresh sync leaves other jobs alone
    assert stored_ids(db) == ["drift-check"]
    await stop(first)
    await asyncio.sleep(0.05)

    restarted_db = reopen(db)
    second = RefreshScheduler(restarted_db, SETTINGS, "demo", extra_jobs=[spec])
    second.start()
    try:
        job = second.scheduler.get_job("drift-check", jobstore=JOBSTORE)
        assert job.next_run_time == planned and job.func_ref == spec.func  # not re-created
        FIRED.clear()
        second.scheduler.modify_job("drift-check", jobstore=JOBSTORE, next_run_time=datetime.now(UTC))
        await eventually(lambda: FIRED == ["fired"])
    finally:
        await stop(second)

    third = RefreshScheduler(restarted_db, SETTINGS, "demo", extra_jobs=[replace(spec, trigger=None)])
    third.start()
    try:
        assert stored_ids(db) == []  # its schedule was turned off
    finally:
        await stop(third)
        restarted_db.dispose()


def test_extra_jobs_cannot_take_the_refresh_ids(db: Engine) -> None:
    clash = scheduling.PersistentJob(id="refresh:bot", func="x:y", trigger=None)
    with pytest.raises(ValueError, match="refresh:"):
        RefreshScheduler(db, SETTINGS, "demo", extra_jobs=[clash])

"""Each adapter's refresh schedule: APScheduler jobs that queue a fine-tuning job.

A policy with a schedule (``schedule_interval_s`` or ``schedule_cron``) that is ``enabled`` gets
one scheduler job, ``refresh:<adapter>``, in a persistent job store in the project database, so
the schedule outlives the process: a run that fell due while the gateway was down still starts
when it is back (if at most ``misfire_grace_s`` late), and several missed runs coalesce into one.

A firing only *queues* a :class:`~tuner.jobs.models.TuningJob` (trigger ``schedule``); the job
worker runs it, and skips the training when the policy's ``min_new_examples`` are not there. An
adapter that already has a queued or running job gets no second one.

Policies change in other processes too (the CLI writes them straight to the database), so the
scheduler re-reads them periodically (:meth:`RefreshScheduler.sync`), and at once after a write
through the admin API. APScheduler 3 does not coordinate several schedulers on one job store:
run it in one process per database (``SWITCHYARD_TUNER__SCHEDULER_ENABLED=false`` elsewhere).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.models import Adapter
from adapters.registry import get_adapter, require_adapter
from switchyard.config import TunerSettings
from switchyard.db import session_scope
from tuner.exceptions import InvalidPolicy
from tuner.jobs.crud import active_job, create_job
from tuner.jobs.models import JobTrigger, TuningJob, TuningJobBase
from tuner.policies import PresetName, TuningPolicy, cron_trigger, get_policy, list_policies, resolve_policy

logger = logging.getLogger(__name__)

JOBSTORE = "refresh"
"""Alias of the persistent store the refresh jobs live in."""
TABLE = "apscheduler_jobs"
JOB_PREFIX = "refresh:"
JOB_FUNC = "tuner.scheduling:enqueue_refresh"
SYNC_JOB = "refresh-policy-sync"
SYNC_INTERVAL_S = 30.0
"""How often policies written by other processes (the CLI) are picked up."""


def job_id(adapter: str) -> str:
    return f"{JOB_PREFIX}{adapter}"


def policy_trigger(policy: TuningPolicy) -> BaseTrigger | None:
    """When the policy's adapter is refreshed; None when it has no schedule or is disabled."""
    if not policy.enabled:
        return None
    if policy.schedule_interval_s is not None:
        return IntervalTrigger(seconds=policy.schedule_interval_s, timezone=UTC)
    if policy.schedule_cron is not None:
        return cron_trigger(policy.schedule_cron)
    return None


def refresh_job(
    *, session: Session, adapter: str, trigger: JobTrigger, default_preset: PresetName, force: bool = False
) -> TuningJobBase:
    """A job that curates the adapter's traffic and trains a new version with its policy's
    hyperparameters (:class:`~adapters.exceptions.AdapterNotFound` for an unknown adapter)."""
    row = require_adapter(session=session, name=adapter)
    try:
        resolved = resolve_policy(get_policy(session=session, adapter=adapter), default_preset=default_preset)
    except ValueError as exc:  # stored before a change of the fields it overrides
        raise InvalidPolicy(f"the tuning policy of {adapter!r} is invalid: {exc}", param="hyperparameters") from None
    return TuningJobBase(
        adapter=adapter,
        tenant=row.tenant,
        model=adapter,
        trigger=trigger,
        hyperparameters=resolved.hyperparameters.model_dump(),
        force=force,
    )


def queue_scheduled_refresh(*, session: Session, adapter: str, default_preset: PresetName) -> TuningJob | None:
    """What a firing does: queue the adapter's refresh, unless it has a job queued or running
    already (then this firing coalesces into that one) or its schedule is gone."""
    policy = get_policy(session=session, adapter=adapter)
    if policy is None or policy_trigger(policy) is None or get_adapter(session=session, name=adapter) is None:
        # The store lags the policies by up to a sync interval; the next sync removes the job.
        logger.info("scheduled refresh of %s skipped: it no longer has an enabled schedule", adapter)
        return None
    return queue_refresh(session=session, adapter=adapter, trigger=JobTrigger.schedule, default_preset=default_preset)


def queue_refresh(
    *, session: Session, adapter: str, trigger: JobTrigger, default_preset: PresetName
) -> TuningJob | None:
    """Queue one refresh of ``adapter``, unless it has a job queued or running already (a
    repeated schedule firing or drift verdict then joins that one): None."""
    running = active_job(session=session, adapter=adapter)
    if running is not None:
        logger.info(
            "%s refresh of %s not queued: %s is %s", trigger.value, adapter, running.public_id, running.status.value
        )
        return None
    job_in = refresh_job(session=session, adapter=adapter, trigger=trigger, default_preset=default_preset)
    job = create_job(session=session, job_in=job_in)
    logger.info("%s refresh of %s queued as %s", trigger.value, adapter, job.public_id)
    return job


@dataclass(frozen=True)
class _Database:
    engine: Engine
    default_preset: PresetName


# APScheduler 3 persists a job as a textual reference to a module-level function plus pickled
# arguments (JOB_FUNC, [adapter]), so the function cannot close over an engine or settings: it
# finds them here. RefreshScheduler.start() sets it, before any stored job can fire.
_database: _Database | None = None


def enqueue_refresh(adapter: str) -> None:
    """The scheduler job (run in the event loop's thread pool): queue ``adapter``'s refresh."""
    database = _database
    if database is None:
        logger.warning("scheduled refresh of %s skipped: no scheduler is running in this process", adapter)
        return
    try:
        with session_scope(database.engine) as session:
            queue_scheduled_refresh(session=session, adapter=adapter, default_preset=database.default_preset)
    except InvalidPolicy as exc:
        logger.error("scheduled refresh of %s skipped: %s", adapter, exc.message)


@dataclass(frozen=True)
class PersistentJob:
    """Another package's periodic job, kept in the same persistent store as the refreshes (the
    drift monitor's checks, say), so that it too survives restarts and catches up on a run
    missed while no process ran. APScheduler 3 stores a job as a textual reference to a
    module-level function (``package.module:function``), so the tuner names it without
    importing it."""

    id: str
    func: str
    """``package.module:function``, called with no arguments in the event loop's thread pool."""
    trigger: BaseTrigger | None
    """When it runs; None removes a stored job of this id (its schedule was turned off)."""
    name: str | None = None


@dataclass
class SyncResult:
    """What :meth:`RefreshScheduler.sync` changed, by adapter."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _same_schedule(job: Job, trigger: BaseTrigger) -> bool:
    # Triggers carry their creation time (an interval's start), so compare what they fire on.
    return type(job.trigger) is type(trigger) and str(job.trigger) == str(trigger)


class RefreshScheduler:
    """The refresh schedule of every adapter policy, kept in the project database."""

    def __init__(
        self,
        db_engine: Engine,
        settings: TunerSettings,
        default_preset: PresetName,
        *,
        sync_interval_s: float = SYNC_INTERVAL_S,
        extra_jobs: Sequence[PersistentJob] = (),
    ) -> None:
        """``extra_jobs``: other packages' periodic jobs, stored beside the refreshes."""
        if any(job.id.startswith(JOB_PREFIX) or job.id == SYNC_JOB for job in extra_jobs):
            raise ValueError(f"extra job ids may not start with {JOB_PREFIX!r} or be {SYNC_JOB!r}")
        self._extra_jobs = tuple(extra_jobs)
        self._db = db_engine
        self._settings = settings
        self._default_preset = default_preset
        self._sync_interval_s = sync_interval_s
        self._sync_lock = threading.Lock()
        self._scheduler = AsyncIOScheduler(
            # The store disposes of the engine's pool when the scheduler shuts down; the engine
            # itself stays usable.
            jobstores={"default": MemoryJobStore(), JOBSTORE: SQLAlchemyJobStore(engine=db_engine, tablename=TABLE)},
            timezone=UTC,
        )

    @property
    def scheduler(self) -> AsyncIOScheduler:
        """The APScheduler instance (for inspection; change schedules through policies)."""
        return self._scheduler

    @property
    def running(self) -> bool:
        return self._scheduler.running

    def start(self) -> None:
        """Start on the running event loop: read the policies, fire the stored jobs that fell due
        while no process ran (within the misfire grace), and re-read the policies every sync
        interval from then on."""
        global _database
        _database = _Database(self._db, self._default_preset)
        self._scheduler.start(paused=True)  # no stored job fires before the first sync
        try:
            self.sync()
            self._install_extra_jobs()
        except BaseException:
            self.shutdown()
            raise
        self._scheduler.add_job(
            self._sync_quietly,
            IntervalTrigger(seconds=self._sync_interval_s, timezone=UTC),
            id=SYNC_JOB,
            jobstore="default",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.resume()

    def shutdown(self) -> None:
        """Stop firing (a refresh being queued finishes; the stored schedule stays). APScheduler
        completes the shutdown on the event loop's next turn."""
        global _database
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if _database is not None and _database.engine is self._db:
            _database = None

    def next_run_time(self, adapter: str) -> datetime | None:
        job = self._scheduler.get_job(job_id(adapter), jobstore=JOBSTORE)
        return job.next_run_time if job is not None else None

    def sync(self) -> SyncResult:
        """Make the stored jobs match the policies: add, replace (a changed schedule) or remove
        (no schedule, disabled, deleted, or the adapter is gone). An unchanged schedule keeps
        its next run time."""
        if not self._scheduler.running:
            raise RuntimeError("start() the scheduler before syncing it")
        with self._sync_lock:
            wanted = self._wanted()
            result = SyncResult()
            stored = {
                job.id: job for job in self._scheduler.get_jobs(jobstore=JOBSTORE) if job.id.startswith(JOB_PREFIX)
            }
            for adapter, trigger in wanted.items():
                existing = stored.get(job_id(adapter))
                if existing is not None and _same_schedule(existing, trigger):
                    self._keep_options(existing)
                    continue
                self._scheduler.add_job(
                    JOB_FUNC,
                    trigger,
                    args=[adapter],
                    id=job_id(adapter),
                    name=f"refresh {adapter}",
                    jobstore=JOBSTORE,
                    max_instances=1,
                    coalesce=True,
                    misfire_grace_time=self._settings.misfire_grace_s,
                    replace_existing=True,
                )
                (result.replaced if existing is not None else result.added).append(adapter)
            for jid in stored.keys() - {job_id(adapter) for adapter in wanted}:
                try:
                    self._scheduler.remove_job(jid, jobstore=JOBSTORE)
                except JobLookupError:  # removed meanwhile by another process's scheduler
                    continue
                result.removed.append(jid.removeprefix(JOB_PREFIX))
            if result.added or result.replaced or result.removed:
                logger.info("refresh schedule synced: %s", result)
            return result

    def _install_extra_jobs(self) -> None:
        """Store each extra job, keeping the next run time of one whose trigger is unchanged."""
        for spec in self._extra_jobs:
            existing = self._scheduler.get_job(spec.id, jobstore=JOBSTORE)
            if spec.trigger is None:
                if existing is not None:
                    self._scheduler.remove_job(spec.id, jobstore=JOBSTORE)
                continue
            if existing is not None and existing.func_ref == spec.func and _same_schedule(existing, spec.trigger):
                self._keep_options(existing, func=spec.func)
                continue
            self._scheduler.add_job(
                spec.func,
                spec.trigger,
                id=spec.id,
                name=spec.name or spec.id,
                jobstore=JOBSTORE,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=self._settings.misfire_grace_s,
                replace_existing=True,
            )

    def _sync_quietly(self) -> None:
        try:
            self.sync()
        except Exception as exc:  # the database is down, say: the next interval retries
            logger.warning("could not sync the refresh schedule with the policies (retrying): %s", exc)

    def _wanted(self) -> dict[str, BaseTrigger]:
        with session_scope(self._db) as session:
            policies = list_policies(session=session)
            existing = set(session.exec(select(Adapter.name)))
        wanted: dict[str, BaseTrigger] = {}
        for policy in policies:
            if policy.adapter not in existing:
                continue
            try:
                trigger = policy_trigger(policy)
            except InvalidPolicy as exc:  # validated on write; only a hand-edited row gets here
                logger.error("the refresh schedule of %s is ignored: %s", policy.adapter, exc.message)
                continue
            if trigger is not None:
                wanted[policy.adapter] = trigger
        return wanted

    def _keep_options(self, job: Job, *, func: str = JOB_FUNC) -> None:
        """Bring a kept job's options up to date (the misfire grace is a setting) without moving
        its next run."""
        options = {
            "func": func,
            "max_instances": 1,
            "coalesce": True,
            "misfire_grace_time": self._settings.misfire_grace_s,
        }
        if job.func_ref != func or any(getattr(job, k) != v for k, v in options.items() if k != "func"):
            self._scheduler.modify_job(job.id, jobstore=JOBSTORE, **options)

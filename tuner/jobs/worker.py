"""The job worker: claims queued jobs from the database and runs them, a few at a time.

The database is the queue, so jobs created anywhere (the API of this process or of another
replica, the CLI, the scheduler) are picked up by whichever worker claims them first. The worker
also keeps each running job's heartbeat, passes cancel requests to the runs, and queues again the
jobs of a worker that stopped reporting (its process died): they resume from their last
checkpoint. On shutdown it stops its training children and queues their jobs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import timedelta

from sqlalchemy.engine import Engine

from switchyard.config import TunerSettings
from switchyard.db import run_in_session, utcnow
from tuner.jobs import crud
from tuner.jobs.models import TuningJob
from tuner.jobs.pipeline import JobRun, TuningPipeline

logger = logging.getLogger(__name__)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class JobWorker:
    def __init__(
        self, *, db: Engine, pipeline: TuningPipeline, settings: TunerSettings, worker_id: str | None = None
    ) -> None:
        self._db = db
        self._pipeline = pipeline
        self._settings = settings
        self.worker_id = worker_id or default_worker_id()
        self._runs: dict[str, tuple[JobRun, asyncio.Task[TuningJob]]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._cancels: set[asyncio.Task[bool]] = set()

    @property
    def running(self) -> list[str]:
        """Public ids of the jobs this worker runs now."""
        return list(self._runs)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="tuning-worker")

    def wake(self) -> None:
        """Look for queued jobs (and cancel requests) now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming; stop the running trainings and queue their jobs again (they resume)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        runs = list(self._runs.values())
        await asyncio.gather(*(run.interrupt() for run, _ in runs), return_exceptions=True)
        for _, task in runs:
            task.cancel()
        await asyncio.gather(*(task for _, task in runs), *self._cancels, return_exceptions=True)
        # Every job still marked as this worker's: the interrupted ones, and one whose claim
        # committed while the loop was being cancelled (it was never started).
        await run_in_session(
            self._db,
            lambda s: crud.requeue(
                session=s, worker=self.worker_id, reason="Interrupted by a shutdown; queued to resume"
            ),
        )

    async def _loop(self) -> None:
        while True:
            try:
                await self._tick()
            except Exception:
                logger.exception("the tuning worker's poll failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.worker_poll_interval_s)
            self._wake.clear()

    async def _tick(self) -> None:
        # Report first: a tick that came late must not take this worker's own jobs for orphans.
        ids = [run.job.id for run, _ in self._runs.values() if run.job.id is not None]
        beat = await run_in_session(self._db, lambda s: crud.heartbeat(session=s, job_ids=ids, worker=self.worker_id))
        for public_id in beat.lost:
            await self._abandon(public_id)
        for public_id in beat.cancel_requested:
            await self._cancel(public_id)
        stale_before = utcnow() - timedelta(seconds=self._settings.heartbeat_stale_s)
        requeued = await run_in_session(
            self._db,
            lambda s: crud.requeue_orphans(session=s, stale_before=stale_before, worker=self.worker_id),
        )
        for job in requeued:
            logger.warning("fine-tuning job %s lost its worker; %s", job.public_id, job.status.value)
        while len(self._runs) < self._settings.max_concurrent_trainings:
            busy = frozenset(run.job.adapter for run, _ in self._runs.values())
            job = await run_in_session(
                self._db,
                lambda s, busy=busy: crud.claim_next(session=s, worker=self.worker_id, busy_adapters=busy),
            )
            if job is None:
                break
            self._start(job)

    def _start(self, job: TuningJob) -> None:
        run = JobRun(job)
        task = asyncio.create_task(self._pipeline.run(run), name=f"tuning-{job.public_id}")
        self._runs[job.public_id] = (run, task)
        logger.info("fine-tuning job %s of %s started (attempt %d)", job.public_id, job.adapter, job.attempts)

        def done(finished: asyncio.Task[TuningJob]) -> None:
            self._runs.pop(job.public_id, None)
            self._wake.set()  # a slot is free

        task.add_done_callback(done)

    async def _abandon(self, public_id: str) -> None:
        """Stop a run this worker no longer owns (another worker resumed it), writing nothing."""
        entry = self._runs.get(public_id)
        if entry is None:
            return
        run, task = entry
        logger.warning("fine-tuning job %s was taken over by another worker; stopping this run", public_id)
        await run.interrupt()
        task.cancel()

    async def _cancel(self, public_id: str) -> None:
        entry = self._runs.get(public_id)
        if entry is None or entry[0].cancel_requested:
            return
        run, task = entry
        if run.process is None:
            if await run.cancel():
                task.cancel()  # curating or evaluating: stop where it is
        else:
            # The child stops at its next step; the run then ends as cancelled by itself.
            cancelling = asyncio.create_task(run.cancel(), name=f"cancel-{public_id}")
            self._cancels.add(cancelling)
            cancelling.add_done_callback(self._cancels.discard)

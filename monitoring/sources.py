"""Gauge sources that cost a blocking read (a database query): read on a worker thread at most
once per period, and served from memory in between, so a scrape never waits on the database
inside the event loop."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from switchyard.db import session_scope
from tuner.jobs.models import JobStatus, TuningJob

logger = logging.getLogger(__name__)
T = TypeVar("T")


class CachedReading(Generic[T]):
    """Calling it returns the last value read (``initial`` until the first read). :meth:`refresh`
    reads again once the value is older than ``ttl_s``; a failed read keeps the old value and is
    not retried before ``ttl_s`` either (a database that is down is not hammered by scrapes)."""

    def __init__(
        self,
        read: Callable[[], T],
        *,
        ttl_s: float,
        initial: T,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl_s = ttl_s
        self._value = initial
        self._name = name
        self._clock = clock
        self._read_at = -math.inf
        self._lock = asyncio.Lock()

    def __call__(self) -> T:
        return self._value

    def _fresh(self) -> bool:
        return self._clock() - self._read_at < self._ttl_s

    async def refresh(self) -> None:
        if self._fresh():
            return
        async with self._lock:  # concurrent scrapes share one read
            if self._fresh():
                return
            try:
                self._value = await asyncio.to_thread(self._read)
            except Exception as exc:
                logger.warning("could not read %s for the metrics (keeping the last value): %s", self._name, exc)
            self._read_at = self._clock()


def count_training_jobs(db: Engine) -> dict[str, int]:
    """Fine-tuning jobs by status, every status present (zero when none): one grouped count on
    the indexed ``status`` column."""
    with session_scope(db) as session:
        rows = session.exec(select(TuningJob.status, func.count()).group_by(col(TuningJob.status))).all()
    counts = {status.value: 0 for status in JobStatus}
    counts.update({JobStatus(status).value: count for status, count in rows})
    return counts

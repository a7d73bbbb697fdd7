"""Moves spooled traffic-log records into the database in batches, retrying with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from gateway.traffic.spool import Spool

logger = logging.getLogger(__name__)

InsertBatch = Callable[[Sequence[dict[str, Any]]], None]


class LogDrain:
    """Background task: spool → database. Replays whatever the spool holds when it starts."""

    def __init__(
        self,
        spool: Spool,
        insert_batch: InsertBatch,
        *,
        batch_size: int,
        interval_s: float,
        retry_max_s: float,
        max_unspooled: int = 10_000,
    ) -> None:
        self.spool = spool
        self._insert_batch = insert_batch
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.retry_max_s = retry_max_s
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        self.last_error: str | None = None
        # Records the spool could not take (a full or broken disk) wait here for the database,
        # so a logging fault never fails the user's request; only overflowing this drops rows.
        self._unspooled: deque[dict[str, Any]] = deque()
        self.max_unspooled = max_unspooled
        self.spool_errors = 0
        self.dropped = 0

    @property
    def pending(self) -> bool:
        return bool(self.spool.backlog_bytes or self._unspooled)

    def record(self, record: dict[str, Any]) -> None:
        """Durably spool one record (a single append) and nudge the drain. Never raises."""
        try:
            self.spool.append(record)
        except OSError as exc:
            self.spool_errors += 1
            if len(self._unspooled) >= self.max_unspooled:
                self.dropped += 1
                logger.critical(
                    "traffic-log row %s DROPPED: spool failed (%s) and memory buffer is full", record.get("id"), exc
                )
            else:
                self._unspooled.append(record)
                logger.error("traffic-log spool append failed (%s); row %s held in memory", exc, record.get("id"))
        if not self._wake.is_set():
            self._wake.set()

    async def drain_once(self) -> int:
        """Move one batch; return how many records it held. Raises if the database refuses."""
        async with self._lock:
            if self._unspooled:
                held = list(self._unspooled)[: self.batch_size]
                await asyncio.to_thread(self._insert_batch, held)
                for _ in held:
                    self._unspooled.popleft()
                return len(held)
            records, end = self.spool.read_batch(self.batch_size)
            if records:
                await asyncio.to_thread(self._insert_batch, records)
            if end > self.spool.offset:
                self.spool.commit(end)
            return len(records)

    async def flush(self) -> None:
        """Drain until nothing is pending (feedback lookups and graceful shutdown use this)."""
        while self.pending:
            await self.drain_once()

    async def _run(self) -> None:
        delay = self.interval_s
        while True:
            try:
                moved = await self.drain_once()
                self.failures, self.last_error, delay = 0, None, self.interval_s
                if moved >= self.batch_size:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down or refusing: keep spooling, retry
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                delay = min(self.retry_max_s, self.interval_s * 2**self.failures)
                logger.warning(
                    "traffic-log drain failed (%d in a row), retrying in %.1fs: %s",
                    self.failures,
                    delay,
                    self.last_error,
                )
                await asyncio.sleep(delay)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            # Let a burst of appends accumulate into one batch.
            await asyncio.sleep(min(0.05, self.interval_s))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="traffic-log-drain")

    async def stop(self, *, timeout_s: float = 10.0) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.flush(), timeout=timeout_s)
        except Exception as exc:  # records stay in the spool and are replayed at next start
            logger.error(
                "traffic-log flush at shutdown incomplete (%s); %d bytes stay spooled", exc, self.spool.backlog_bytes
            )
        self.spool.close()

"""Moves spooled traffic-log records into the database in batches, retrying with backoff.

A batch the database refuses for what it holds (anything but a connection-level failure) is
split until the good rows land and each bad row is set aside in a dead-letter file: one bad row
must never hold up every row behind it. A lost connection keeps the whole batch for a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from sqlalchemy.exc import DBAPIError

from gateway.traffic.pending import PendingIndex
from gateway.traffic.spool import Spool
from switchyard.db import is_data_error
from switchyard.traffic.sanitize import sanitize_row

logger = logging.getLogger(__name__)

InsertBatch = Callable[[Sequence[dict[str, Any]]], None]
AppendResult = tuple[dict[str, Any], int | None, BaseException | None]
"""The sanitised row, and where it was spooled or why it could not be."""
DEFAULT_MAX_FIELD_CHARS = 1_000_000
NESTED_CONTENT = {"request": None, "params": {}, "choices": None}
"""What a row keeps of its JSON content when that content cannot even be sanitised."""


def describe(exc: BaseException) -> str:
    """The error's class and the driver's first line, never the statement's parameters (content)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500]


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
        max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
        max_unspooled: int = 10_000,
        max_indexed: int = 100_000,
        probe: Callable[[], None] | None = None,
    ) -> None:
        self.spool = spool
        self._insert_batch = insert_batch
        # Inserts a known-good row and rolls it back: tells "this row is bad" from "every row
        # would fail" (a missing table, a read-only database), which must be retried, not discarded.
        self._probe = probe
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.retry_max_s = retry_max_s
        self.max_field_chars = max_field_chars
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()  # set (and replaced) each time rows reach the database
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        self.last_error: str | None = None
        self.dead_lettered = 0
        # Records the spool could not take (a full or broken disk) wait here for the database,
        # so a logging fault never fails the user's request; only overflowing this drops rows.
        self._unspooled: deque[dict[str, Any]] = deque()
        self.max_unspooled = max_unspooled
        self.spool_errors = 0
        self.dropped = 0
        self._held_total = 0  # rows ever put in _unspooled (a mark for caught_up)
        self._held_done = 0  # of those, rows taken out (stored or dead-lettered)
        self._appending = 0  # appends handed to the spool thread and not yet finished
        self._index = PendingIndex(max_indexed)

    @property
    def pending(self) -> bool:
        return bool(self.spool.backlog_bytes or self._unspooled or self._appending)

    # ---- the request path

    def record(self, row: dict[str, Any]) -> asyncio.Future[None]:
        """Hand one row to the spool and return at once (the event loop never touches the disk).

        The returned future resolves once the row is appended to the spool, or held in memory
        if the spool failed; await it before the response's last byte to keep the durability
        promise. Calling without awaiting still appends, in call order. Never raises, and the
        future never fails; cancelling it does not cancel the append.
        """
        loop = asyncio.get_running_loop()
        appended: asyncio.Future[None] = loop.create_future()
        try:
            job = self.spool.submit(self._append, row)
        except RuntimeError:  # the spool is closed (shutdown)
            self._hold(self._sanitize(row), "the spool is closed")
            appended.set_result(None)
            return appended
        self._appending += 1

        def done(job: Future[AppendResult]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(self._appended, row, job, appended)

        job.add_done_callback(done)
        return appended

    def _sanitize(self, row: dict[str, Any]) -> dict[str, Any]:
        try:
            return sanitize_row(row, max_field_chars=self.max_field_chars)
        except Exception:  # content nested past the recursion limit: keep the row, not the content
            logger.exception("traffic-log row %r could not be sanitised; its JSON content is dropped", row.get("id"))
            return sanitize_row({**row, **NESTED_CONTENT}, max_field_chars=self.max_field_chars)

    def _append(self, row: dict[str, Any]) -> AppendResult:
        """On the spool thread: sanitise (once, for every row) and append."""
        clean = self._sanitize(row)
        try:
            return clean, self.spool.append(clean), None
        except Exception as exc:  # a full or broken disk, mostly: the row is held in memory instead
            return clean, None, exc

    def _appended(
        self,
        row: dict[str, Any],
        job: Future[AppendResult],
        appended: asyncio.Future[None],
    ) -> None:
        """Back on the event loop once the spool thread has run the append."""
        self._appending -= 1
        try:
            clean, position, error = job.result()
        except BaseException as exc:  # pragma: no cover - _append catches what it can
            clean, position, error = self._sanitize(row), None, exc
        if position is not None:
            self._index.add(str(clean.get("id")), position)
        else:
            self._hold(clean, str(error))
        if not appended.done():
            appended.set_result(None)
        self._wake.set()

    def _hold(self, row: dict[str, Any], reason: str) -> None:
        self.spool_errors += 1
        if len(self._unspooled) >= self.max_unspooled:
            self.dropped += 1
            logger.critical(
                "traffic-log row %r DROPPED: spool failed (%s) and memory buffer is full", row.get("id"), reason
            )
            return
        self._unspooled.append(row)
        self._held_total += 1
        logger.error("traffic-log spool append failed (%s); row %r held in memory", reason, row.get("id"))

    # ---- reads that must not wait for a full drain

    async def caught_up(self, *, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` until every row recorded before the call has left the spool
        (stored or dead-lettered); True if it has. Unlike :meth:`flush` this is bounded under load
        and while the database is down, and rows recorded after the call are not waited for."""
        if not self.pending:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                # Queued behind every append submitted so far, so their bytes count.
                spool_mark = await self.spool.run(lambda: self.spool.end_position)
                memory_mark = self._held_total
                while True:
                    progress = self._progress
                    if self.spool.stored_position >= spool_mark and self._held_done >= memory_mark:
                        return True
                    self._wake.set()
                    await progress.wait()
        except TimeoutError:
            return False

    async def pending_row(self, request_id: str) -> dict[str, Any] | None:
        """The row for ``request_id`` if it is recorded but not yet stored (and still indexed)."""
        for row in self._unspooled:
            if row.get("id") == request_id:
                return row
        position = self._index.get(request_id)
        if position is None:
            return None
        return await self.spool.run(self.spool.read_at, position)

    # ---- the drain

    async def drain_once(self) -> int:
        """Move one batch; return how many records it held. Raises if the database is unreachable."""
        async with self._lock:
            if self._unspooled:
                held = list(itertools.islice(self._unspooled, self.batch_size))
                await self._store(held)
                for _ in held:
                    self._unspooled.popleft()
                self._held_done += len(held)
                self._advance()
                return len(held)
            records, end = await self.spool.run(self.spool.read_batch, self.batch_size)
            if records:
                await self._store(records)
            if end > self.spool.offset:
                await self.spool.run(self.spool.commit, end)
            self._advance()
            return len(records)

    def _advance(self) -> None:
        self._index.forget_before(self.spool.stored_position)
        self._progress.set()
        self._progress = asyncio.Event()

    async def _store(self, records: Sequence[dict[str, Any]]) -> None:
        """Insert ``records``; when the database refuses their content, bisect down to the bad rows."""
        try:
            await asyncio.to_thread(self._insert_batch, records)
        except Exception as exc:
            if not is_data_error(exc):
                raise  # an outage, a lock, a missing table: not the rows' fault, retry the batch later
            if len(records) == 1:
                if self._probe is not None:
                    await asyncio.to_thread(self._probe)  # raises (and the batch is retried) if systemic
                await self._dead_letter(records[0], exc)
                return
            middle = len(records) // 2
            await self._store(records[:middle])
            await self._store(records[middle:])

    async def _dead_letter(self, record: dict[str, Any], exc: Exception) -> None:
        # If the file cannot be written this raises, and the batch is retried: nothing is skipped.
        await self.spool.run(lambda: self.spool.dead_letter(record, error=type(exc).__name__, detail=describe(exc)))
        self.dead_lettered += 1
        # The id and the class only: the message may quote the row's content.
        logger.critical(
            "traffic-log row %r refused by the database (%s); moved to %s",
            str(record.get("id"))[:80],
            type(exc).__name__,
            self.spool.dead_letter_path,
        )

    async def flush(self) -> None:
        """Drain until nothing is pending (graceful shutdown and tests; reads use :meth:`caught_up`)."""
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
            except Exception as exc:  # the database is down: keep spooling, retry
                self.failures += 1
                self.last_error = describe(exc)
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
        except Exception as exc:  # spooled records stay and are replayed at next start
            logger.error(
                "traffic-log flush at shutdown incomplete (%s); %d bytes stay spooled, %d rows held in memory are lost",
                describe(exc),
                self.spool.backlog_bytes,
                len(self._unspooled),
            )
        await asyncio.to_thread(self.spool.close)

"""An append-only spool file: the durable first stop of every traffic-log record.

A record is one JSON line written with a single ``write()`` on an ``O_APPEND`` descriptor
before the response's last byte leaves, so it survives the death of the process (it sits in the
OS page cache); ``fsync`` is optional, for machine crashes. A checkpoint file holds the byte
offset up to which records are known to be in the database.

One writer: an exclusive lock on ``<name>.lock`` keeps a second process (or a second ``Spool``)
off the folder, since two writers would truncate each other's rows. Within the process every
file operation runs on the spool's own single thread (:meth:`run`), which keeps the disk off the
event loop and keeps appends, reads and truncation in submission order, so none of them race.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Lock descriptors this process holds. A child forked later (vLLM's engine core) inherits them, and
# an inherited flock outlives the parent: a gateway killed alone would leave its successor locked out.
_HELD_LOCKS: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)  # close, never LOCK_UN: unlocking here would release the parent's lock too
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class SpoolInUse(RuntimeError):
    """Another process (or another ``Spool`` in this one) already owns the spool folder."""


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpoolInUse(
            f"the traffic-log spool in {path.parent} is in use by another gateway process; "
            "each gateway needs its own data folder (SWITCHYARD_DATA_DIR)"
        ) from None
    _HELD_LOCKS.add(fd)
    return fd


class Spool:
    def __init__(self, folder: Path, *, fsync: bool = False, name: str = "requests") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.path = folder / f"{name}.jsonl"
        self.checkpoint_path = folder / f"{name}.offset"
        self.dead_letter_path = folder / f"{name}.deadletter.jsonl"
        self.fsync = fsync
        self.corrupt_records = 0
        self._lock_fd = _lock(folder / f"{name}.lock")  # first: nothing is read before we own it
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._size = os.fstat(self._fd).st_size
            self._terminate_torn_record()
            self._offset = min(self._read_checkpoint(), self._size)
        except BaseException:
            self._unlock()
            raise
        # Bytes compacted away since open, so positions (base + offset) only ever grow.
        self._base = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"spool-{name}")
        self._closed = False

    def _unlock(self) -> None:
        _HELD_LOCKS.discard(self._lock_fd)
        os.close(self._lock_fd)  # closing the only descriptor releases the flock

    def _terminate_torn_record(self) -> None:
        # A crash mid-write can leave a final line without its newline; close it off so the
        # next record starts on a line of its own (the torn one is then skipped as corrupt).
        if self._size == 0:
            return
        with self.path.open("rb") as fh:
            fh.seek(self._size - 1)
            if fh.read(1) != b"\n":
                self._size += os.write(self._fd, b"\n")

    def _read_checkpoint(self) -> int:
        try:
            return int(self.checkpoint_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _write_checkpoint(self, offset: int) -> None:
        tmp = self.checkpoint_path.with_suffix(".tmp")
        tmp.write_text(str(offset))
        os.replace(tmp, self.checkpoint_path)
        self._offset = offset

    @property
    def offset(self) -> int:
        """Byte offset up to which records are in the database."""
        return self._offset

    @property
    def backlog_bytes(self) -> int:
        """Bytes spooled but not yet confirmed in the database."""
        # Read from the event loop while the spool thread may be mid-commit: never report < 0.
        return max(0, self._size - self._offset)

    @property
    def end_position(self) -> int:
        """Where the next record will start, counted since open (it only grows)."""
        return self._base + self._size

    @property
    def stored_position(self) -> int:
        """Up to where records are in the database, counted since open (it only grows)."""
        return self._base + self._offset

    # The methods below touch files: call them through run()/submit() (or from one thread only).

    def append(self, record: dict[str, Any]) -> int:
        """Append one record; return its position (see :attr:`end_position`)."""
        line = (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode()
        position = self.end_position
        written = os.write(self._fd, line)
        if written != len(line):  # only on a full disk; the record must not be half-kept
            os.ftruncate(self._fd, self._size)  # take the torn part back, so the file stays whole lines
            raise OSError(f"short write to spool ({written} of {len(line)} bytes)")
        self._size += written
        if self.fsync:
            os.fsync(self._fd)
        return position

    def read_batch(self, max_records: int) -> tuple[list[dict[str, Any]], int]:
        """Up to ``max_records`` records past the checkpoint, and the offset just after them."""
        if self._offset >= self._size:
            return [], self._offset
        records: list[dict[str, Any]] = []
        end = self._offset
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            while len(records) < max_records and end < self._size:
                line = fh.readline()
                if not line.endswith(b"\n"):
                    break
                end += len(line)
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    self.corrupt_records += 1
                    logger.error("skipping a corrupt spool record at byte %d", end - len(line))
        return records, end

    def read_at(self, position: int) -> dict[str, Any] | None:
        """The record appended at ``position``, or None once it is stored (or unreadable)."""
        if position < self.stored_position or position >= self.end_position:
            return None
        with self.path.open("rb") as fh:
            fh.seek(position - self._base)
            try:
                record = json.loads(fh.readline())
            except json.JSONDecodeError:
                return None
        return record if isinstance(record, dict) else None

    def commit(self, offset: int) -> None:
        """Mark everything before ``offset`` as stored; compact when the spool is empty."""
        if offset >= self._size:
            # Truncate first: a crash between the two steps leaves checkpoint > size, which
            # __init__ clamps, so nothing is replayed twice or lost.
            os.ftruncate(self._fd, 0)
            self._base += self._size
            self._size = 0
            offset = 0
        self._write_checkpoint(offset)

    def dead_letter(self, record: dict[str, Any], *, error: str, detail: str) -> None:
        """Keep a record the database refused, so the drain can move past it (and nothing is lost)."""
        entry = {"id": record.get("id"), "error": error, "detail": detail, "at": datetime.now(UTC).isoformat()}
        line = (json.dumps({**entry, "record": record}, default=str, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.dead_letter_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if os.write(fd, line) != len(line):
                raise OSError("short write to the dead-letter file")
            os.fsync(fd)  # rare, and the only copy of the row once the spool moves past it
        finally:
            os.close(fd)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)`` on the spool's thread, after everything queued before it."""
        return self._executor.submit(fn, *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the spool's thread and wait for it, off the event loop."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def close(self) -> None:
        """Finish queued work, then release the file and the lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        os.close(self._fd)
        self._unlock()

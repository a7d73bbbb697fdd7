"""An append-only spool file: the durable first stop of every traffic-log record.

A record is one JSON line written with a single ``write()`` on an ``O_APPEND`` descriptor
before the response's last byte leaves, so it survives the death of the process (it sits in the
OS page cache); ``fsync`` is optional, for machine crashes. A checkpoint file holds the byte
offset up to which records are known to be in the database.

Single writer: the gateway's event loop appends, reads and compacts, so none of these race.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class Spool:
    def __init__(self, folder: Path, *, fsync: bool = False, name: str = "requests") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{name}.jsonl"
        self.checkpoint_path = folder / f"{name}.offset"
        self.fsync = fsync
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size
        self._terminate_torn_record()
        self._offset = min(self._read_checkpoint(), self._size)
        self.corrupt_records = 0

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
        return self._size - self._offset

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode()
        written = os.write(self._fd, line)
        if written != len(line):  # only on a full disk; the record must not be half-kept
            raise OSError(f"short write to spool ({written} of {len(line)} bytes)")
        self._size += written
        if self.fsync:
            os.fsync(self._fd)

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

    def commit(self, offset: int) -> None:
        """Mark everything before ``offset`` as stored; compact when the spool is empty."""
        if offset >= self._size:
            # Truncate first: a crash between the two steps leaves checkpoint > size, which
            # __init__ clamps, so nothing is replayed twice or lost.
            os.ftruncate(self._fd, 0)
            self._size = 0
            offset = 0
        self._write_checkpoint(offset)

    def close(self) -> None:
        os.close(self._fd)

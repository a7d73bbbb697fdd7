"""The drain moves spooled rows into SQLite and PostgreSQL, idempotently, rides out outages, and
sets aside (dead-letters) a row the database refuses instead of retrying it forever."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from gateway.traffic.drain import LogDrain
from gateway.traffic.pending import PendingIndex
from gateway.traffic.spool import Spool
from switchyard.db import make_engine
from switchyard.schema import create_all_tables
from switchyard.traffic.crud import insert_logs_idempotent, probe_log_insert
from switchyard.traffic.models import RequestLog
from tests.gateway.traffic.factories import UNREACHABLE, count, row, stored_ids
from tests.utils.db import postgres_engine


def make_drain(tmp_path: Path, db: Engine, *, batch_size: int = 7) -> LogDrain:
    return LogDrain(
        Spool(tmp_path / "spool"),
        lambda records: insert_logs_idempotent(engine=db, records=records),
        batch_size=batch_size,
        interval_s=0.01,
        retry_max_s=0.05,
    )


def dead_letters(drain: LogDrain) -> list[dict]:
    if not drain.spool.dead_letter_path.exists():
        return []
    return [json.loads(line) for line in drain.spool.dead_letter_path.read_text().splitlines()]


async def test_drain_moves_everything_in_batches(tmp_path: Path, db: Engine) -> None:
    drain = make_drain(tmp_path, db)
    for i in range(30):
        drain.record(row(i))  # not awaited: appends still land, in call order, before the drain reads
    await drain.flush()
    assert count(db) == 30 and drain.spool.backlog_bytes == 0
    with Session(db) as session:
        stored = session.get(RequestLog, "chatcmpl-3")
    assert stored is not None and stored.request == [{"role": "user", "content": "q3"}] and stored.output == "a3"
    await drain.stop()


async def test_replay_after_crash_is_idempotent(tmp_path: Path, db: Engine) -> None:
    drain = make_drain(tmp_path, db)
    await asyncio.gather(*(drain.record(row(i)) for i in range(10)))
    # Rows reached the database but the checkpoint did not move (a crash between the two).
    insert_logs_idempotent(engine=db, records=[row(i) for i in range(10)])
    drain.spool.close()
    restarted = make_drain(tmp_path, db)
    assert restarted.spool.backlog_bytes > 0
    await restarted.flush()
    assert count(db) == 10
    await restarted.stop()


async def test_database_down_spools_then_recovers(tmp_path: Path, db: Engine) -> None:
    target = {"db": make_engine(UNREACHABLE)}
    drain = LogDrain(
        Spool(tmp_path / "spool"),
        lambda records: insert_logs_idempotent(engine=target["db"], records=records),
        batch_size=50,
        interval_s=0.01,
        retry_max_s=0.05,
    )
    drain.start()
    for i in range(20):
        await drain.record(row(i))  # serving goes on: the append never touches the database
    for _ in range(100):
        if drain.failures >= 1:
            break
        await asyncio.sleep(0.05)
    assert drain.failures >= 1 and drain.last_error and drain.spool.backlog_bytes > 0
    assert drain.dead_lettered == 0 and not drain.spool.dead_letter_path.exists()  # an outage is not bad data
    target["db"].dispose()
    target["db"] = db  # the database comes back
    for _ in range(100):
        if drain.spool.backlog_bytes == 0:
            break
        await asyncio.sleep(0.05)
    assert count(db) == 20 and drain.failures == 0
    await drain.stop()


async def test_a_failing_spool_never_fails_the_caller_and_loses_nothing(tmp_path: Path, db: Engine) -> None:
    drain = make_drain(tmp_path, db)
    drain.max_unspooled = 3
    await drain.record(row(0))
    good, drain.spool._fd = drain.spool._fd, os.open(os.devnull, os.O_RDONLY)  # the disk goes bad: writes fail
    await asyncio.gather(*(drain.record(row(i)) for i in range(1, 6)))  # must not raise
    assert drain.spool_errors == 5 and drain.dropped == 2
    os.close(drain.spool._fd)
    drain.spool._fd = good  # the disk is back for the flush
    await drain.flush()
    assert stored_ids(db) == {"chatcmpl-0", "chatcmpl-1", "chatcmpl-2", "chatcmpl-3"}
    await drain.stop()


async def test_record_appends_off_the_event_loop_and_resolves_once_durable(tmp_path: Path, db: Engine) -> None:
    drain = make_drain(tmp_path, db)
    disk = threading.Event()
    blocked = drain.spool.submit(disk.wait, 30)  # a slow disk: the spool thread is busy
    appended = drain.record(row(1))
    await asyncio.sleep(0)  # the event loop runs on while the append waits for the disk
    assert not appended.done() and drain.pending
    assert drain.spool.path.read_bytes() == b""
    disk.set()
    await appended  # resolved: the row is in the file, where a SIGKILL cannot take it
    assert blocked.result() is True
    assert json.loads(drain.spool.path.read_text())["id"] == "chatcmpl-1"
    await drain.stop()


async def test_a_refused_row_is_dead_lettered_and_the_rest_land(
    tmp_path: Path, db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    drain = make_drain(tmp_path, db, batch_size=50)
    for i in range(5):
        await drain.record(row(i))
    # A record that was never sanitised (spooled by an older gateway) and that no database takes.
    broken = {**row(99), "status": "not-a-status", "output": "secret content"}
    await drain.spool.run(drain.spool.append, broken)
    for i in range(5, 10):
        await drain.record(row(i))
    with caplog.at_level(logging.ERROR, logger="gateway.traffic.drain"):
        await drain.flush()  # returns: the batch is not retried forever
    assert stored_ids(db) == {f"chatcmpl-{i}" for i in range(10)}
    assert drain.spool.backlog_bytes == 0 and drain.dead_lettered == 1 and drain.failures == 0
    [letter] = dead_letters(drain)
    assert letter["id"] == "chatcmpl-99" and letter["record"] == broken and letter["error"]
    alert = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "chatcmpl-99" in alert and letter["error"] in alert and "secret content" not in alert
    await drain.stop()


@pytest.mark.postgres
async def test_a_nul_row_bypassing_sanitising_does_not_block_the_drain_on_postgres(tmp_path: Path) -> None:
    """The original outage: PostgreSQL refuses a NUL in text, and the drain retried that batch forever."""
    with postgres_engine() as db:
        drain = make_drain(tmp_path, db, batch_size=50)
        drain.start()
        try:
            for i in range(3):
                await drain.record(row(i))
            raw = {**row(50), "model": "x\x00y"}  # fed raw to the insert, as a pre-fix spool would be
            await drain.spool.run(drain.spool.append, raw)
            for i in range(3, 6):
                await drain.record(row(i))
            for _ in range(200):
                if drain.spool.backlog_bytes == 0 and not drain.pending:
                    break
                await asyncio.sleep(0.05)
            assert stored_ids(db) == {f"chatcmpl-{i}" for i in range(6)}
            assert drain.dead_lettered == 1 and drain.failures == 0
            [letter] = dead_letters(drain)
            assert letter["id"] == "chatcmpl-50" and letter["error"] == "DataError"
            assert letter["record"]["model"] == "x\x00y"  # kept as it was, to be repaired and replayed
            await drain.record(row(6))  # and the drain has moved on
            for _ in range(200):
                if "chatcmpl-6" in stored_ids(db):
                    break
                await asyncio.sleep(0.05)
            assert "chatcmpl-6" in stored_ids(db)
        finally:
            await drain.stop()


def test_the_pending_index_is_bounded_and_forgets_stored_rows() -> None:
    index = PendingIndex(limit=3)
    for i in range(5):
        index.add(f"r{i}", i * 10)
    assert len(index) == 3 and index.get("r1") is None and index.get("r4") == 40
    index.forget_before(35)  # stored up to here
    assert len(index) == 1 and index.get("r3") is None and index.get("r4") == 40


async def test_a_database_that_refuses_every_row_is_retried_not_dead_lettered(tmp_path: Path) -> None:
    """A missing table fails each row alone too; the probe tells that apart from one bad row."""
    db = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables yet: every insert fails
    drain = LogDrain(
        Spool(tmp_path / "spool"),
        lambda records: insert_logs_idempotent(engine=db, records=records),
        batch_size=4,
        interval_s=0.01,
        retry_max_s=0.05,
        probe=lambda: probe_log_insert(engine=db),
    )
    for i in range(3):
        await drain.record(row(i))
    with pytest.raises(Exception, match="no such table"):
        await drain.drain_once()
    assert dead_letters(drain) == [] and drain.dead_lettered == 0 and drain.spool.backlog_bytes > 0
    create_all_tables(db)  # the operator fixes the database: nothing was lost
    await drain.flush()
    assert count(db) == 3
    await drain.stop()
    db.dispose()

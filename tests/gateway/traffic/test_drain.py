"""The drain moves spooled rows into SQLite and PostgreSQL, idempotently, and rides out outages."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from gateway.traffic.drain import LogDrain
from gateway.traffic.spool import Spool
from switchyard.db import make_engine
from switchyard.traffic.crud import insert_logs_idempotent
from switchyard.traffic.models import RequestLog


def row(i: int) -> dict:
    return {
        "id": f"chatcmpl-{i}",
        "created_at": datetime.now(UTC).isoformat(),
        "endpoint": "chat.completions",
        "model": "demo-base",
        "params": {"max_tokens": 3},
        "request": [{"role": "user", "content": f"q{i}"}],
        "output": f"a{i}",
        "prompt_tokens": 4,
        "completion_tokens": 3,
        "status": 200,
    }


def count(db: Engine) -> int:
    with Session(db) as session:
        return session.exec(select(func.count()).select_from(RequestLog)).one()


def make_drain(tmp_path: Path, db: Engine) -> LogDrain:
    return LogDrain(
        Spool(tmp_path / "spool"),
        lambda records: insert_logs_idempotent(engine=db, records=records),
        batch_size=7,
        interval_s=0.01,
        retry_max_s=0.05,
    )


async def test_drain_moves_everything_in_batches(tmp_path: Path, db: Engine) -> None:
    drain = make_drain(tmp_path, db)
    for i in range(30):
        drain.record(row(i))
    await drain.flush()
    assert count(db) == 30 and drain.spool.backlog_bytes == 0
    with Session(db) as session:
        stored = session.get(RequestLog, "chatcmpl-3")
    assert stored is not None and stored.request == [{"role": "user", "content": "q3"}] and stored.output == "a3"
    await drain.stop()


async def test_replay_after_crash_is_idempotent(tmp_path: Path, db: Engine) -> None:
    drain = make_drain(tmp_path, db)
    for i in range(10):
        drain.record(row(i))
    # Rows reached the database but the checkpoint did not move (a crash between the two).
    insert_logs_idempotent(engine=db, records=[row(i) for i in range(10)])
    drain.spool.close()
    restarted = make_drain(tmp_path, db)
    assert restarted.spool.backlog_bytes > 0
    await restarted.flush()
    assert count(db) == 10
    await restarted.stop()


async def test_database_down_spools_then_recovers(tmp_path: Path, db: Engine) -> None:
    target = {"db": make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1")}
    drain = LogDrain(
        Spool(tmp_path / "spool"),
        lambda records: insert_logs_idempotent(engine=target["db"], records=records),
        batch_size=50,
        interval_s=0.01,
        retry_max_s=0.05,
    )
    drain.start()
    for i in range(20):
        drain.record(row(i))  # serving goes on: the append never touches the database
    await asyncio.sleep(0.5)
    assert drain.failures >= 1 and drain.last_error and drain.spool.backlog_bytes > 0
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
    drain.record(row(0))
    drain.spool.close()  # the disk goes bad: every further append raises OSError
    for i in range(1, 6):
        drain.record(row(i))  # must not raise
    assert drain.spool_errors == 5 and drain.dropped == 2
    drain.spool._fd = os.open(drain.spool.path, os.O_WRONLY | os.O_APPEND)  # reopen for the flush
    await drain.flush()
    with Session(db) as session:
        stored = {r.id for r in session.exec(select(RequestLog))}
    assert stored == {"chatcmpl-0", "chatcmpl-1", "chatcmpl-2", "chatcmpl-3"}
    await drain.stop()

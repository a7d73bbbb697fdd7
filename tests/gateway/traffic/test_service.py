"""Admin reads and feedback wait a bounded time for the drain, never for the whole spool; feedback
records who sent it (a reviewer or not) and the key's tenant."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from gateway.auth.models import ADMIN, KeyScope, Principal
from gateway.exceptions import ResourceNotFound
from gateway.feedback.service import FeedbackService
from gateway.traffic.drain import LogDrain
from gateway.traffic.service import RequestFilters, TrafficLogService
from gateway.traffic.spool import Spool
from switchyard.db import make_engine
from switchyard.traffic.crud import insert_logs_idempotent
from switchyard.traffic.models import Feedback, FeedbackCreate
from tests.gateway.traffic.factories import UNREACHABLE, count, row

# Generous: only a hang (the old unbounded flush) trips it; nothing is timed.
DEADLOCK_GUARD_S = 30
KEY = Principal(key_id=11, name="owner", tenant="acme")
REVIEWER = Principal(key_id=12, name="reviewer", tenant="acme", scopes=frozenset({KeyScope.review}))


class StuckDatabase:
    """Inserts into the real database once opened; until then they hang (a database that has
    stopped answering). Closed by default, opened by the test (or after the guard)."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        self.opened = threading.Event()

    def __call__(self, records: Sequence[dict[str, Any]]) -> None:
        self.opened.wait(DEADLOCK_GUARD_S * 2)
        insert_logs_idempotent(engine=self.db, records=records)


def owned_row(i: int, key_id: int | None = KEY.key_id) -> dict[str, Any]:
    return row(i, key_id=key_id)


@pytest.fixture
async def stuck(tmp_path: Path, db: Engine) -> AsyncIterator[tuple[LogDrain, StuckDatabase]]:
    insert = StuckDatabase(db)
    drain = LogDrain(Spool(tmp_path / "spool"), insert, batch_size=50, interval_s=0.01, retry_max_s=0.05)
    drain.start()
    yield drain, insert
    insert.opened.set()
    await drain.stop()


async def test_reads_answer_while_the_drain_is_stuck(stuck: tuple[LogDrain, StuckDatabase], db: Engine) -> None:
    drain, _ = stuck
    for i in range(5):
        await drain.record(owned_row(i))
    service = TrafficLogService(db=db, drain=drain, read_wait_s=0.1)
    listed = await asyncio.wait_for(service.list(RequestFilters()), DEADLOCK_GUARD_S)
    assert listed.count == 0  # answered from the database as it is
    with pytest.raises(ResourceNotFound):
        await asyncio.wait_for(service.get("chatcmpl-1"), DEADLOCK_GUARD_S)
    assert drain.pending


async def test_reads_answer_while_the_database_is_down(tmp_path: Path, db: Engine) -> None:
    down = make_engine(UNREACHABLE)
    drain = LogDrain(
        Spool(tmp_path / "spool"),
        lambda records: insert_logs_idempotent(engine=down, records=records),
        batch_size=50,
        interval_s=0.01,
        retry_max_s=0.05,
    )
    drain.start()
    await drain.record(owned_row(1))
    service = TrafficLogService(db=db, drain=drain, read_wait_s=0.1)
    assert (await asyncio.wait_for(service.list(RequestFilters()), DEADLOCK_GUARD_S)).count == 0
    await drain.stop(timeout_s=0.1)
    down.dispose()


async def test_reads_see_rows_recorded_before_them(tmp_path: Path, db: Engine) -> None:
    drain = LogDrain(
        Spool(tmp_path / "spool"),
        lambda records: insert_logs_idempotent(engine=db, records=records),
        batch_size=2,
        interval_s=30,  # the read must wake the drain, not wait for its next round
        retry_max_s=0.05,
    )
    drain.start()
    for i in range(7):
        drain.record(owned_row(i))  # not even awaited: queued before the read, so waited for
    service = TrafficLogService(db=db, drain=drain, read_wait_s=DEADLOCK_GUARD_S)
    assert (await service.list(RequestFilters(limit=500))).count == 7
    assert (await service.get("chatcmpl-6")).id == "chatcmpl-6"
    await drain.stop()


async def test_feedback_right_after_the_answer_stores_just_that_row(
    stuck: tuple[LogDrain, StuckDatabase], db: Engine
) -> None:
    drain, insert = stuck
    for i in range(3):
        await drain.record(owned_row(i))
    feedback = FeedbackService(db=db, drain=drain, read_wait_s=0.1)
    body = FeedbackCreate(completion_id="chatcmpl-1", score=1.0, corrected_completion="better")
    stored = await asyncio.wait_for(feedback.submit(body, principal=KEY), DEADLOCK_GUARD_S)
    assert stored.request_id == "chatcmpl-1" and count(db) == 1  # not the whole spool
    other = Principal(key_id=99, name="other")
    with pytest.raises(ResourceNotFound):  # a pending row is still someone's
        await asyncio.wait_for(
            feedback.submit(FeedbackCreate(completion_id="chatcmpl-2", score=1.0), principal=other), DEADLOCK_GUARD_S
        )
    insert.opened.set()
    await drain.flush()  # the drain's own insert of chatcmpl-1 is skipped: idempotent by id
    assert count(db) == 3


async def test_feedback_on_a_row_spooled_by_an_earlier_process(tmp_path: Path, db: Engine) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(owned_row(5))  # not in this process's index
    spool.close()
    drain = LogDrain(
        Spool(tmp_path / "spool"),
        lambda records: insert_logs_idempotent(engine=db, records=records),
        batch_size=50,
        interval_s=30,
        retry_max_s=0.05,
    )
    drain.start()
    feedback = FeedbackService(db=db, drain=drain, read_wait_s=DEADLOCK_GUARD_S)
    stored = await feedback.submit(FeedbackCreate(completion_id="chatcmpl-5", score=0.5), principal=KEY)
    assert stored.request_id == "chatcmpl-5"
    with pytest.raises(ResourceNotFound):
        await feedback.submit(FeedbackCreate(completion_id="chatcmpl-none", score=0.5), principal=ADMIN)
    await drain.stop()


async def test_feedback_records_reviewer_and_tenant(tmp_path: Path, db: Engine) -> None:
    drain = LogDrain(
        Spool(tmp_path / "spool"),
        lambda records: insert_logs_idempotent(engine=db, records=records),
        batch_size=50,
        interval_s=0.01,
        retry_max_s=0.05,
    )
    await drain.record(owned_row(1))
    await drain.record(owned_row(2, key_id=REVIEWER.key_id))
    await drain.flush()
    feedback = FeedbackService(db=db, drain=drain, read_wait_s=0.1)
    correction = {"score": -1.0, "corrected_completion": "the right answer"}
    by_key = await feedback.submit(FeedbackCreate(completion_id="chatcmpl-1", **correction), principal=KEY)
    by_reviewer = await feedback.submit(FeedbackCreate(completion_id="chatcmpl-2", **correction), principal=REVIEWER)
    by_admin = await feedback.submit(FeedbackCreate(completion_id="chatcmpl-1", score=1.0), principal=ADMIN)
    assert (by_key.reviewer, by_key.tenant, by_key.corrected_completion) == (False, "acme", "the right answer")
    assert (by_reviewer.reviewer, by_reviewer.tenant) == (True, "acme")
    assert (by_admin.reviewer, by_admin.tenant) == (True, None)
    with Session(db) as session:
        stored = {(f.request_id, f.key_id, f.reviewer) for f in session.exec(select(Feedback))}
    assert stored == {("chatcmpl-1", 11, False), ("chatcmpl-2", 12, True), ("chatcmpl-1", None, True)}
    await drain.stop()


@pytest.mark.parametrize("text", ["a\x00b", "lone \ud800"])
def test_feedback_text_the_database_cannot_store_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        FeedbackCreate(completion_id="chatcmpl-1", score=1.0, comment=text)

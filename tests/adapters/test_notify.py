"""Registry changes are announced over PostgreSQL LISTEN/NOTIFY, and only when they commit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.notify import listen_for_changes
from adapters.registry import bump_generation
from tests.utils.db import postgres_engine

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg() -> Iterator[Engine]:
    with postgres_engine() as engine:
        yield engine


async def test_committed_changes_are_announced_and_rolled_back_ones_are_not(pg: Engine) -> None:
    calls: list[float] = []
    first_call = asyncio.Event()

    async def on_change() -> None:
        calls.append(asyncio.get_running_loop().time())
        first_call.set()

    listener = asyncio.create_task(listen_for_changes(pg.url, on_change))
    try:
        await asyncio.wait_for(first_call.wait(), timeout=10)  # the catch-up refresh on connect
        with Session(pg) as session:
            bump_generation(session)
            session.rollback()
        await asyncio.sleep(0.5)
        assert len(calls) == 1
        with Session(pg) as session:
            bump_generation(session)
            session.commit()
        for _ in range(50):
            if len(calls) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(calls) == 2
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)

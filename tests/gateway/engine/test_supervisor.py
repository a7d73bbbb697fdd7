"""The supervisor's policy: failed starts are retried with doubling waits, a dead engine is
replaced, and the ready callbacks run after every start. The real engine's death is in
tests/gateway/test_engine_failures.py."""

from __future__ import annotations

import asyncio
import time

from gateway.engine.protocol import EngineState
from gateway.engine.supervisor import SupervisedEngine
from tests.gateway.engine.fakes import RecordingEngine


async def wait_for(predicate, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_failed_starts_back_off_then_run() -> None:
    inner = RecordingEngine()
    inner.failed_starts = 3
    supervised = SupervisedEngine(inner, backoff_s=0.05, backoff_max_s=0.1)
    readies: list[float] = []

    async def ready() -> None:
        readies.append(time.monotonic())

    supervised.on_ready(ready)
    assert supervised.state is EngineState.starting
    started = time.monotonic()
    await asyncio.wait_for(supervised.start(), 5)
    await wait_for(lambda: readies)
    # Waits of 0.05, 0.1 and 0.1 (capped) between four attempts.
    assert inner.starts == 4 and readies[0] - started >= 0.25
    assert supervised.state is EngineState.running and supervised.is_ready
    await supervised.shutdown()
    assert supervised.state is EngineState.stopped


async def test_a_dead_engine_is_reported_and_replaced() -> None:
    inner = RecordingEngine()
    supervised = SupervisedEngine(inner, backoff_s=0.2, backoff_max_s=1)
    readies = 0

    async def ready() -> None:
        nonlocal readies
        readies += 1

    supervised.on_ready(ready)
    await supervised.start()
    await wait_for(lambda: readies == 1)
    inner.ready = False  # the engine core died
    assert supervised.state is EngineState.dead and not supervised.is_ready  # at once, not at the next poll
    await wait_for(lambda: inner.starts == 2)
    await wait_for(lambda: readies == 2)
    assert supervised.state is EngineState.running and supervised.restarts == 1
    await supervised.shutdown()

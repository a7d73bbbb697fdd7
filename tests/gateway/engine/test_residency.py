"""Residency bookkeeping: refusals are remembered and retried with backoff, pins always equal the
desired set (below the slot count), and a withdrawn version is unloaded only once idle."""

from __future__ import annotations

import asyncio
import math

import pytest

from gateway.engine.protocol import AdapterLoadError
from gateway.engine.residency import MAX_ENGINE_DEATHS, AdapterResidency
from gateway.exceptions import EngineUnavailable
from tests.gateway.engine.fakes import RecordingEngine, version


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine() -> RecordingEngine:
    engine = RecordingEngine(refuse=frozenset({7}))
    engine.ready = True
    return engine


async def test_a_refusal_is_remembered_then_retried_with_backoff(engine: RecordingEngine) -> None:
    clock = Clock()
    residency = AdapterResidency(engine, max_loras=2, retry_max_s=4, clock=clock)
    bad = version(7)
    for _ in range(3):  # one engine call; the others answer from memory
        with pytest.raises(AdapterLoadError, match="bad weights in bot@7"):
            await residency.ensure_loaded(bad)
    assert engine.calls == [("load", 7)]
    waits = []
    for _ in range(4):
        failure = residency.failure(7)
        assert failure is not None
        waits.append(failure.retry_at - clock.now)
        clock.now = failure.retry_at
        with pytest.raises(AdapterLoadError):
            await residency.ensure_loaded(bad)
    assert waits == [1, 2, 4, 4]  # doubling, capped at retry_max_s
    engine.refuse.clear()
    clock.now = residency.failure(7).retry_at  # type: ignore[union-attr]
    await residency.ensure_loaded(bad)
    assert residency.is_loaded(7) and residency.failure(7) is None


async def test_concurrent_loads_of_one_version_reach_the_engine_once(engine: RecordingEngine) -> None:
    residency = AdapterResidency(engine, max_loras=2, retry_max_s=30)
    await asyncio.gather(*(residency.ensure_loaded(version(3)) for _ in range(5)))
    assert engine.calls == [("load", 3)]


async def test_pins_equal_the_desired_set_below_the_slot_count(engine: RecordingEngine) -> None:
    residency = AdapterResidency(engine, max_loras=3, retry_max_s=30)
    assert await residency.apply_pins([version(1), version(2), version(3)]) == [
        version(3)
    ]  # past the pins the slots allow: reported
    assert residency.pinned == {1, 2}  # one slot is always left for unpinned adapters
    engine.calls.clear()
    # The alias pinned on version 1 moved to version 4: 1 is unpinned (unloaded, loaded back).
    assert await residency.apply_pins([version(4), version(2)]) == []
    assert residency.pinned == {2, 4}
    # Version 4 is added again right before its pin: vLLM pins only what its CPU cache holds now.
    assert engine.calls == [("unload", 1), ("load", 1), ("load", 4), ("load", 4), ("pin", 4)]
    assert residency.is_loaded(1)
    # A version the engine refuses cannot be pinned, and is reported.
    assert await residency.apply_pins([version(7)]) == [version(7)]
    assert residency.pinned == frozenset()


async def test_a_new_engine_starts_with_nothing(engine: RecordingEngine) -> None:
    residency = AdapterResidency(engine, max_loras=2, retry_max_s=30)
    await residency.apply_pins([version(1)])
    with pytest.raises(AdapterLoadError):
        await residency.ensure_loaded(version(7))
    residency.reset()
    assert not residency.is_loaded(1) and residency.pinned == frozenset() and residency.failure(7) is None


async def test_withdraw_waits_for_requests_then_unloads(engine: RecordingEngine) -> None:
    residency = AdapterResidency(engine, max_loras=2, retry_max_s=30)
    await residency.ensure_loaded(version(5))
    await residency.enter(5)
    await residency.enter(5)
    withdrawn = asyncio.create_task(residency.withdraw(5))
    await asyncio.sleep(0.01)
    assert residency.is_withdrawn(5) and not withdrawn.done() and ("unload", 5) not in engine.calls
    residency.leave(5)
    await asyncio.sleep(0.01)
    assert not withdrawn.done()
    residency.leave(5)
    await asyncio.wait_for(withdrawn, 1)
    assert engine.calls[-1] == ("unload", 5) and not residency.is_loaded(5)
    residency.forget(5)
    assert not residency.is_withdrawn(5)


async def test_no_more_unpinned_adapters_run_at_once_than_there_are_unpinned_slots(engine: RecordingEngine) -> None:
    residency = AdapterResidency(engine, max_loras=3, retry_max_s=30)
    assert await residency.apply_pins([version(1)]) == []  # two unpinned slots left
    await residency.enter(1)  # pinned: never waits
    await residency.enter(2)
    await residency.enter(3)
    await residency.enter(2)  # already running: shares its slot
    third = asyncio.create_task(residency.enter(4))
    await asyncio.sleep(0)
    assert not third.done(), "a third unpinned adapter must wait for a slot"
    residency.leave(2)
    await asyncio.sleep(0)
    assert not third.done(), "version 2 still has a request"
    residency.leave(2)
    await asyncio.wait_for(third, timeout=5)
    assert residency.in_flight(4) == 1


async def test_a_version_that_kills_the_engine_is_not_retried_in_a_loop(engine: RecordingEngine) -> None:
    """Each engine restart forgets what the dead engine held, but not the version it died loading:
    that one waits out a growing backoff, and after a few deaths is not loaded again."""
    clock = Clock()
    residency = AdapterResidency(engine, max_loras=2, retry_max_s=60, clock=clock)
    await engine.start()
    engine.fatal.add(9)
    for death in range(1, MAX_ENGINE_DEATHS + 1):
        with pytest.raises(EngineUnavailable):
            await residency.ensure_loaded(version(9))
        residency.reset()  # what the router does once the supervisor has a new engine
        engine.ready = True
        with pytest.raises(AdapterLoadError):  # refused at once, without asking the new engine
            await residency.ensure_loaded(version(9))
        assert engine.calls.count(("load", 9)) == death
        clock.now = residency.failure(9).retry_at  # type: ignore[union-attr]
    assert residency.failure(9).retry_at == math.inf  # type: ignore[union-attr]
    await residency.ensure_loaded(version(1))  # the others load as ever

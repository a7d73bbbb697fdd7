"""Which adapter versions this engine holds, which it refused, which are pinned, which are busy.

Every version reaches the engine through :meth:`AdapterResidency.ensure_loaded` (vLLM's
``add_lora``, a utility call whose failure comes back to the caller) before any request names
it. A fault in an adapter therefore surfaces here, as :class:`AdapterLoadError`, and never
inside a scheduled engine step, where it would kill the engine core. Refusals are remembered
per version and retried with backoff, so a bad version costs one failed load per backoff
period, not one per request.

Loads and unloads of one version are serialized by a lock of its own (vLLM's server keeps a
lock per LoRA name for the same reason) and are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vllm.lora.request import LoRARequest

from adapters.registry import ServableVersion
from gateway.engine.protocol import AdapterLoadError, EngineClient

logger = logging.getLogger(__name__)
RETRY_BASE_S = 1.0
MAX_ENGINE_DEATHS = 3
"""Deaths of the engine while loading one version after which this replica stops trying it."""


def lora_request(version: ServableVersion) -> LoRARequest:
    # The version's database id is its engine slot id: two versions never share a slot.
    return LoRARequest(lora_name=version.qualified_name, lora_int_id=version.version_id, lora_path=str(version.path))


def _split_qualified(name: str) -> tuple[str, int]:
    adapter, _, number = name.rpartition("@")
    return adapter, int(number)


@dataclass
class LoadFailure:
    reason: str
    attempts: int
    retry_at: float
    """``time.monotonic()`` before which the engine is not asked again."""


class AdapterResidency:
    def __init__(
        self,
        engine: EngineClient,
        *,
        max_loras: int,
        retry_max_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        # vLLM evicts only unpinned adapters: with every slot pinned, the next other adapter
        # finds no slot and the engine core dies ("All items are pinned"). One slot stays free.
        self.max_pins = max(max_loras - 1, 0)
        self._retry_max_s = retry_max_s
        self._clock = clock
        self._epoch = 0
        self._loaded: dict[int, LoRARequest] = {}
        """Loaded into the current engine at least once. vLLM may since have evicted one from
        its caches; it then reloads the same (already proven) files by itself."""
        self._failures: dict[int, LoadFailure] = {}
        self._loading: dict[int, ServableVersion] = {}
        """Versions the engine is loading or warming right now: suspects if it dies meanwhile."""
        self._suspects: set[int] = set()
        """Versions the engine died while loading: their refusals outlive an engine restart."""
        self._pinned: set[int] = set()
        self._locks: dict[int, asyncio.Lock] = {}
        self._in_flight: Counter[int] = Counter()
        self._idle: dict[int, asyncio.Event] = {}
        self._withdrawn: set[int] = set()
        self._max_loras = max_loras
        self._slot_freed = asyncio.Event()
        self.waiting_for_slot = 0
        """Requests waiting in :meth:`enter` for a slot (a metric)."""

    # -- engine life ----------------------------------------------------------------------

    def reset(self) -> None:
        """A new engine holds nothing: forget what the previous one had loaded, pinned or refused,
        except the versions it died loading. Retrying those at once on every restart would be a
        crash loop; they are retried only after their backoff, which grows with each death."""
        self._epoch += 1
        self._loaded.clear()
        self._pinned.clear()
        died_loading = list(self._loading.values())
        self._loading.clear()
        self._suspects.update(v.version_id for v in died_loading)
        self._failures = {i: f for i, f in self._failures.items() if i in self._suspects}
        for version in died_loading:
            self._record_failure(version, "the engine died while loading it")
            failure = self._failures[version.version_id]
            if failure.attempts >= MAX_ENGINE_DEATHS:
                logger.error(
                    "%s killed the engine %d times; not loaded again", version.qualified_name, failure.attempts
                )
                self._failures[version.version_id] = LoadFailure(
                    f"the engine died loading it {failure.attempts} times", failure.attempts, math.inf
                )

    def is_loaded(self, version_id: int) -> bool:
        return version_id in self._loaded

    def failure(self, version_id: int) -> LoadFailure | None:
        return self._failures.get(version_id)

    @property
    def pinned(self) -> frozenset[int]:
        return frozenset(self._pinned)

    @property
    def loaded(self) -> list[tuple[str, int, bool]]:
        """(adapter, version number, pinned) of each version this engine has loaded."""
        pinned = frozenset(self._pinned)
        loaded = list(self._loaded.items())
        return [(*_split_qualified(lora.lora_name), version_id in pinned) for version_id, lora in loaded]

    def _lock(self, version_id: int) -> asyncio.Lock:
        return self._locks.setdefault(version_id, asyncio.Lock())

    def _refused(self, version_id: int) -> LoadFailure | None:
        failure = self._failures.get(version_id)
        return failure if failure is not None and self._clock() < failure.retry_at else None

    async def ensure_loaded(self, version: ServableVersion, *, warm: bool = True) -> None:
        """Load ``version`` unless this engine already has; :class:`AdapterLoadError` if it refuses
        (now, or within the backoff of an earlier refusal)."""
        version_id = version.version_id
        if version_id in self._loaded:
            return
        if failure := self._refused(version_id):
            raise AdapterLoadError(failure.reason)
        async with self._lock(version_id):
            if version_id in self._loaded:
                return
            if failure := self._refused(version_id):
                raise AdapterLoadError(failure.reason)
            epoch, lora, started = self._epoch, lora_request(version), time.perf_counter()
            if warm:  # the warm-up is a request in the engine: it needs a slot like any other
                await self.enter(version_id)
            self._loading[version_id] = version
            try:
                await self._engine.load_adapter(lora, warm=warm)
            except AdapterLoadError as exc:
                self._loading.pop(version_id, None)
                if epoch == self._epoch:
                    self._record_failure(version, exc.reason)
                raise
            except BaseException:
                # Left in ``_loading`` when the engine is gone: it may have died of this very load.
                if self._engine.is_ready:
                    self._loading.pop(version_id, None)
                raise
            else:
                self._loading.pop(version_id, None)
            finally:
                if warm:
                    self.leave(version_id)
            if epoch == self._epoch:  # an engine restarted meanwhile holds nothing of this load
                self._loaded[version_id] = lora
                self._failures.pop(version_id, None)
                self._suspects.discard(version_id)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        logger.info("loaded %s%s in %.0f ms", version.qualified_name, " and warmed it" if warm else "", elapsed_ms)

    def _record_failure(self, version: ServableVersion, reason: str) -> None:
        previous = self._failures.get(version.version_id)
        attempts = previous.attempts + 1 if previous else 1
        wait = min(RETRY_BASE_S * 2 ** (attempts - 1), self._retry_max_s)
        self._failures[version.version_id] = LoadFailure(reason, attempts, self._clock() + wait)
        logger.warning(
            "the engine refused %s (attempt %d, next in %.0f s): %s", version.qualified_name, attempts, wait, reason
        )

    # -- pins -----------------------------------------------------------------------------

    async def apply_pins(self, desired: Sequence[ServableVersion]) -> list[ServableVersion]:
        """Make the engine's pins exactly ``desired`` (the first :attr:`max_pins` of it); return
        the versions that should be pinned and could not be."""
        keep = list(desired[: self.max_pins])
        if len(desired) > len(keep):
            left_out = ", ".join(v.qualified_name for v in desired[len(keep) :])
            logger.warning("%d slot(s) allow %d pin(s); not pinned: %s", self.max_pins + 1, self.max_pins, left_out)
        wanted = {v.version_id: v for v in keep}
        missed = list(desired[len(keep) :])  # reported, so /ready shows the pins it cannot hold
        for version_id in sorted(self._pinned - wanted.keys()):
            try:
                await self._unpin(version_id)
            except Exception as exc:  # the engine is going away; a new one starts with no pins
                logger.warning("could not unpin adapter version %d: %s", version_id, exc)
        for version_id, version in wanted.items():
            if version_id in self._pinned:
                continue
            try:
                await self.ensure_loaded(version, warm=False)  # proves it loads, or records the refusal
                async with self._lock(version_id):
                    # Loaded once is not loaded now: vLLM may have evicted it from its CPU cache
                    # since (LRU), and it pins only what it holds. Adding a held adapter is a no-op.
                    await self._engine.load_adapter(lora_request(version), warm=False)
                    await self._engine.pin_adapter(version_id)
                    self._pinned.add(version_id)
            except AdapterLoadError:
                missed.append(version)
            except Exception as exc:
                logger.warning("could not pin %s: %s", version.qualified_name, exc)
                missed.append(version)
        return missed

    async def _unpin(self, version_id: int) -> None:
        """vLLM has no unpin: removing the adapter drops its pin (in both caches), and adding it
        back keeps it loaded, as an ordinary LRU entry, for the requests that still use it."""
        async with self._lock(version_id):
            await self._engine.unload_adapter(version_id)
            self._pinned.discard(version_id)
            lora = self._loaded.pop(version_id, None)
            if lora is None:
                return
            try:
                await self._engine.load_adapter(lora, warm=False)
                self._loaded[version_id] = lora
            except Exception as exc:  # it loads again on its next request
                logger.warning("could not reload %s after unpinning it: %s", lora.lora_name, exc)

    # -- requests in flight ---------------------------------------------------------------

    def is_withdrawn(self, version_id: int) -> bool:
        return version_id in self._withdrawn

    def _has_slot(self, version_id: int) -> bool:
        if version_id in self._pinned or self._in_flight.get(version_id):
            return True
        unpinned = sum(1 for v in self._in_flight if v not in self._pinned)
        return unpinned < self._max_loras - len(self._pinned)

    async def enter(self, version_id: int) -> None:
        """Count a request in for ``version_id``, once the engine can run it beside the others.

        vLLM's scheduler puts up to ``max_loras`` different adapters in a batch without regard to
        pins, and the LoRA manager makes room by evicting the oldest unpinned slot, even one the
        same batch needs (the engine core then dies on a missing mapping). So no more different
        unpinned adapters run at once than there are unpinned slots; a request for one more waits
        until one of them has no request left."""
        if not self._has_slot(version_id):
            self.waiting_for_slot += 1
            try:
                while not self._has_slot(version_id):
                    freed = self._slot_freed
                    await freed.wait()
            finally:
                self.waiting_for_slot -= 1
        self._in_flight[version_id] += 1

    def leave(self, version_id: int) -> None:
        self._in_flight[version_id] -= 1
        if self._in_flight[version_id] <= 0:
            del self._in_flight[version_id]
            if (idle := self._idle.pop(version_id, None)) is not None:
                idle.set()
            self._slot_freed.set()
            self._slot_freed = asyncio.Event()

    def in_flight(self, version_id: int) -> int:
        return self._in_flight.get(version_id, 0)

    async def withdraw(self, version_id: int) -> None:
        """Admit no new request to ``version_id``, wait for those running, then unload it: after
        this returns its files may be deleted."""
        self._withdrawn.add(version_id)
        while self.in_flight(version_id):
            await self._idle.setdefault(version_id, asyncio.Event()).wait()
        async with self._lock(version_id):
            if self._engine.is_ready:
                await self._engine.unload_adapter(version_id)
            self._loaded.pop(version_id, None)
            self._pinned.discard(version_id)

    def restore(self, version_id: int) -> None:
        """Undo :meth:`withdraw` (the deletion it prepared for did not happen)."""
        self._withdrawn.discard(version_id)

    def forget(self, version_id: int) -> None:
        """The version no longer exists."""
        self._failures.pop(version_id, None)
        self._locks.pop(version_id, None)
        self._withdrawn.discard(version_id)

"""Model-name routing and the gateway's half of the hot-swap protocol.

``model`` is the base model, an alias (its active version, or its canary split) or
``alias@version``. The router keeps an in-memory routing table and replaces it whole, so a
request sees the old table or the new one, never a mix. A refresh that brings in a version
this engine has not served yet first loads it (``add_lora``) and warms it with one request,
and only then swaps the table, so no user request pays the load. Requests in flight keep the
``LoRARequest`` they started with; the router counts them per version and unloads a deleted
version only when its count reaches zero.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from vllm.lora.request import LoRARequest

from adapters.errors import AdapterNotFound
from adapters.notify import listen_for_changes
from adapters.registry import AliasRoute, ServableVersion, get_servable, registry_generation, routing_table
from adapters.store import ArtifactStore
from gateway.auth.models import Principal
from gateway.engine.protocol import EngineClient
from gateway.exceptions import ModelNotFound
from switchyard.db import session_scope

logger = logging.getLogger(__name__)


def lora_request(version: ServableVersion) -> LoRARequest:
    # The version's database id is its engine slot id: two versions never share a slot.
    return LoRARequest(lora_name=version.qualified_name, lora_int_id=version.version_id, lora_path=str(version.path))


@dataclass(frozen=True)
class RouteTarget:
    """Where one request goes: the base model, or one exact adapter version."""

    model: str
    version: ServableVersion | None = None

    @property
    def lora_request(self) -> LoRARequest | None:
        return lora_request(self.version) if self.version is not None else None


@dataclass(frozen=True)
class ModelCard:
    id: str
    created: int
    root: str
    """What ``id`` resolves to now: the base, or the exact ``alias@version``."""
    parent: str | None


def canary_draw(alias: str, user: str | None) -> float:
    """A number in [0, 1): fixed per (alias, user) so a user stays on one side of a canary."""
    if user is None:
        return random.random()
    digest = hashlib.sha256(f"{alias}\x00{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class ModelRouter:
    def __init__(
        self, *, base_model_name: str, base_fingerprint: str, db: Engine, store: ArtifactStore, engine: EngineClient
    ) -> None:
        self.base_model_name = base_model_name
        self.base_fingerprint = base_fingerprint
        self._db = db
        self._store = store
        self._engine = engine
        self._routes: dict[str, AliasRoute] = {}
        self._generation = -1
        self._known: set[int] = set()
        self._pinned: set[int] = set()
        self._in_flight: Counter[int] = Counter()
        self._unload_when_idle: set[int] = set()
        self._lock = asyncio.Lock()
        self._created = int(time.time())
        self._tasks: list[asyncio.Task[None]] = []

    # -- reading the registry -------------------------------------------------------------

    def _read(self, known_generation: int) -> tuple[int, dict[str, AliasRoute] | None]:
        with session_scope(self._db) as session:
            generation = registry_generation(session=session)
            if generation == known_generation:
                return generation, None
            return generation, routing_table(session=session, store=self._store, base_fingerprint=self.base_fingerprint)

    async def refresh(self) -> bool:
        """Pick up registry changes (from any process); return True if the table changed."""
        async with self._lock:
            generation, table = await asyncio.to_thread(self._read, self._generation)
            if table is None:
                return False
            first_load = self._generation < 0
            if not first_load and self._engine.is_ready:
                table = await self._warm_new_versions(table)
            self._routes = table
            self._generation = generation
            self._known = {v.version_id for route in table.values() for v in route.versions}
            await self._apply_pins(table)
            return True

    async def _warm_new_versions(self, table: dict[str, AliasRoute]) -> dict[str, AliasRoute]:
        prepared = dict(table)
        for name, route in table.items():
            try:
                for version in route.versions:
                    if version.version_id not in self._known:
                        await self.preload(version)
            except Exception as exc:  # keep this alias on its old route rather than serve a broken one
                logger.error("could not load %s; alias %s keeps its previous route: %s", name, name, exc)
                if name in self._routes:
                    prepared[name] = self._routes[name]
                else:
                    prepared.pop(name)
        return prepared

    async def preload(self, version: ServableVersion) -> None:
        """Load and warm ``version`` in the engine (before any alias points at it)."""
        started = time.perf_counter()
        await self._engine.load_adapter(lora_request(version))
        self._known.add(version.version_id)
        logger.info("loaded and warmed %s in %.0f ms", version.qualified_name, (time.perf_counter() - started) * 1e3)

    async def on_engine_ready(self) -> None:
        await self._apply_pins(self._routes)

    async def _apply_pins(self, table: dict[str, AliasRoute]) -> None:
        if not self._engine.is_ready:
            return
        for route in table.values():
            if route.pinned and route.active and route.active.version_id not in self._pinned:
                try:
                    await self._engine.pin_adapter(route.active.version_id)
                    self._pinned.add(route.active.version_id)
                except Exception as exc:  # e.g. more pins than engine slots
                    logger.warning("could not pin %s: %s", route.active.qualified_name, exc)

    # -- resolving requests ---------------------------------------------------------------

    def _not_found(self, model: str) -> ModelNotFound:
        return ModelNotFound(f"The model '{model}' does not exist or you do not have access to it.", param="model")

    async def resolve(self, model: str, principal: Principal, *, user: str | None = None) -> RouteTarget:
        """The target for ``model``; :class:`ModelNotFound` if absent or not allowed for this key."""
        if model == self.base_model_name:
            return RouteTarget(model=model)
        name, sep, pinned = model.partition("@")
        if not principal.may_use(name):
            raise self._not_found(model)
        if not sep:
            route = self._routes.get(name)
            if route is None:
                raise self._not_found(model)
            if route.canary is not None and (route.active is None or canary_draw(name, user) < route.canary_weight):
                return RouteTarget(model=model, version=route.canary)
            assert route.active is not None
            return RouteTarget(model=model, version=route.active)
        if not pinned.isdigit():
            raise self._not_found(model)
        number = int(pinned)
        route = self._routes.get(name)
        for candidate in route.versions if route else ():
            if candidate.version == number:
                return RouteTarget(model=model, version=candidate)
        try:
            version = await asyncio.to_thread(self._version_from_registry, name, number)
        except AdapterNotFound:
            raise self._not_found(model) from None
        return RouteTarget(model=model, version=version)

    def _version_from_registry(self, name: str, version: int) -> ServableVersion:
        with session_scope(self._db) as session:
            return get_servable(
                session=session, store=self._store, name=name, version=version, base_fingerprint=self.base_fingerprint
            )

    def models_for(self, principal: Principal) -> list[ModelCard]:
        base = self.base_model_name
        cards = [ModelCard(id=base, created=self._created, root=base, parent=None)]
        for name, route in sorted(self._routes.items()):
            if principal.may_use(name) and route.active is not None:
                cards.append(ModelCard(id=name, created=self._created, root=route.active.qualified_name, parent=base))
        return cards

    # -- in-flight accounting -------------------------------------------------------------

    def enter(self, target: RouteTarget) -> None:
        if target.version is not None:
            self._in_flight[target.version.version_id] += 1

    def leave(self, target: RouteTarget) -> None:
        if target.version is None:
            return
        version_id = target.version.version_id
        self._in_flight[version_id] -= 1
        if self._in_flight[version_id] <= 0:
            del self._in_flight[version_id]
            if version_id in self._unload_when_idle:
                self._unload_when_idle.discard(version_id)
                asyncio.get_running_loop().create_task(self._unload(version_id))

    def in_flight(self, version_id: int) -> int:
        return self._in_flight.get(version_id, 0)

    async def unload_when_idle(self, version_id: int) -> None:
        """Drop a deleted version from the engine once no request is using it."""
        if self.in_flight(version_id):
            self._unload_when_idle.add(version_id)
        else:
            await self._unload(version_id)

    async def _unload(self, version_id: int) -> None:
        self._known.discard(version_id)
        self._pinned.discard(version_id)
        try:
            await self._engine.unload_adapter(version_id)
        except Exception as exc:
            logger.warning("could not unload adapter version %d: %s", version_id, exc)

    # -- background polling ---------------------------------------------------------------

    async def _poll(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh()
            except Exception as exc:  # keep serving the last table while the database is away
                logger.warning("registry refresh failed: %s", exc)

    def start_watching(self, interval_s: float) -> None:
        """Poll the registry generation; on PostgreSQL also refresh on every NOTIFY."""
        self._tasks.append(asyncio.create_task(self._poll(interval_s), name="registry-poll"))
        if self._db.dialect.name == "postgresql":
            listener = listen_for_changes(self._db.url, self.refresh)
            self._tasks.append(asyncio.create_task(listener, name="registry-listen"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

"""Model-name routing and the gateway's half of the hot-swap protocol.

``model`` is the base model, an alias (its active version, or its canary split) or
``alias@version``. The router keeps two tables: the registry's, as last read, and the one it
routes by. The second differs from the first only where this engine could not load a version
(that alias keeps its previous route, and the replica reports that it *lags* the registry
until a retry succeeds). Both are replaced whole, so a request sees the old table or the new
one, never a mix. A version is loaded into the engine before any table points at it, and every
request's version is loaded before the request is admitted (see :mod:`gateway.engine.residency`).

A request counts as in flight on its version from the moment it is resolved until it ends,
so a version is never unloaded (nor its files deleted) between routing and generation.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from vllm.lora.request import LoRARequest

from adapters.exceptions import AdapterNotFound, ArtifactCorrupt
from adapters.models import VersionStatus
from adapters.notify import listen_for_changes
from adapters.registry import (
    AliasRoute,
    ServableVersion,
    registry_generation,
    require_adapter,
    require_version,
    routing_table,
)
from adapters.store import ArtifactStore
from gateway.auth.models import Principal
from gateway.engine.protocol import AdapterLoadError, EngineClient
from gateway.engine.residency import AdapterResidency, lora_request
from gateway.exceptions import EngineUnavailable, ModelNotFound
from switchyard.db import DB_INT_MAX, session_scope

logger = logging.getLogger(__name__)
# A version number as clients write it: ASCII digits only (str.isdigit() also takes '²'), no
# leading zero, and (checked after parsing) no larger than the column holds.
VERSION_NUMBER = re.compile(r"[1-9][0-9]{0,9}")
# Statuses any key allowed to see the adapter may call with ``alias@N``; the others
# (candidate, rejected) are for keys with the evaluate scope.
SERVING_STATUSES = frozenset({VersionStatus.active, VersionStatus.canary, VersionStatus.retired})


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


def _visible(principal: Principal, version: ServableVersion) -> bool:
    return principal.may_use(version.adapter, tenant=version.tenant, shared=version.shared)


class ModelRouter:
    def __init__(
        self,
        *,
        base_model_name: str,
        base_fingerprint: str,
        db: Engine,
        store: ArtifactStore,
        engine: EngineClient,
        max_loras: int,
        warm_retry_max_s: float,
    ) -> None:
        self.base_model_name = base_model_name
        self.base_fingerprint = base_fingerprint
        self._db = db
        self._store = store
        self._engine = engine
        self.residency = AdapterResidency(engine, max_loras=max_loras, retry_max_s=warm_retry_max_s)
        self._latest: dict[str, AliasRoute] = {}
        """The registry's routing table, as last read."""
        self._routes: dict[str, AliasRoute] = {}
        """The table requests are routed by."""
        self._pin_misses: list[ServableVersion] = []
        self._generation = -1
        self._lock = asyncio.Lock()
        self._created = int(time.time())
        self._tasks: list[asyncio.Task[None]] = []

    # -- following the registry -----------------------------------------------------------

    @property
    def registry_generation(self) -> int:
        """The registry generation this replica has read (-1 before the first read)."""
        return self._generation

    def _read(self, known_generation: int) -> tuple[int, dict[str, AliasRoute] | None]:
        with session_scope(self._db) as session:
            generation = registry_generation(session=session)
            if generation == known_generation:
                return generation, None
            return generation, routing_table(session=session, store=self._store, base_fingerprint=self.base_fingerprint)

    async def refresh(self) -> bool:
        """Pick up registry changes (from any process), and retry loads that failed once their
        backoff has passed; return True if the routing table was rebuilt."""
        async with self._lock:
            generation, table = await asyncio.to_thread(self._read, self._generation)
            if table is None:
                if not self._retry_due():
                    return False
                table = self._latest
            self._latest, self._generation = table, generation
            await self._apply(table)
            return True

    async def on_engine_ready(self) -> None:
        """A new engine (first start or restart) holds no adapter: load the table and pins again."""
        async with self._lock:
            self.residency.reset()
            await self._apply(self._latest)

    async def _apply(self, table: dict[str, AliasRoute]) -> None:
        if not self._engine.is_ready:
            # Nothing can be loaded now. Requests fail with 503 until the engine runs, and
            # on_engine_ready then loads (and checks) the whole table.
            self._routes = table
            return
        try:
            served: dict[str, AliasRoute] = {}
            for name, route in table.items():
                if (chosen := await self._servable_route(name, route)) is not None:
                    served[name] = chosen
            self._routes = served
            desired = [r.active for _, r in sorted(table.items()) if r.pinned and r.active is not None]
            self._pin_misses = await self.residency.apply_pins(desired)
        except EngineUnavailable:
            self._routes = table  # the engine died meanwhile; its successor redoes all this

    async def _loads(self, version: ServableVersion) -> bool:
        try:
            await self.residency.ensure_loaded(version)
        except AdapterLoadError:
            return False
        return True

    async def _servable_route(self, name: str, route: AliasRoute) -> AliasRoute | None:
        """``route`` if the engine loads all its versions; otherwise the alias's previous route,
        or the new active version without its canary, or nothing (the alias lags)."""
        loaded = [v for v in route.versions if await self._loads(v)]
        if len(loaded) == len(route.versions):
            return route
        previous = self._routes.get(name)
        if previous is not None and previous != route and all([await self._loads(v) for v in previous.versions]):
            logger.error("alias %s keeps its previous route until its new version loads", name)
            return previous
        if route.active is not None and route.active in loaded:
            logger.error("alias %s serves %s without its canary until it loads", name, route.active.qualified_name)
            return AliasRoute(active=route.active, pinned=route.pinned)
        logger.error("alias %s cannot be served by this engine until its version loads", name)
        return None

    def _lagging_versions(self) -> list[ServableVersion]:
        wanted = {v.version_id: v for route in self._latest.values() for v in route.versions}
        if not self._engine.is_ready:
            return list(wanted.values())
        served = {v.version_id for route in self._routes.values() for v in route.versions}
        lagging = {i: v for i, v in wanted.items() if i not in served or not self.residency.is_loaded(i)}
        lagging.update((v.version_id, v) for v in self._pin_misses)
        return list(lagging.values())

    @property
    def lagging(self) -> list[str]:
        """Versions the registry routes (or pins) that this replica does not serve (or pin) yet."""
        return sorted(v.qualified_name for v in self._lagging_versions())

    def _retry_due(self) -> bool:
        if not self._engine.is_ready:
            return False
        now = time.monotonic()
        failures = (self.residency.failure(v.version_id) for v in self._lagging_versions())
        return any(f is None or f.retry_at <= now for f in failures)

    async def preload(self, version: ServableVersion, *, warm: bool = True) -> None:
        """Load (and warm) ``version`` before any alias points at it; :class:`AdapterLoadError`
        if the engine refuses it."""
        await self.residency.ensure_loaded(version, warm=warm)

    # -- resolving requests ---------------------------------------------------------------

    def _not_found(self, model: str) -> ModelNotFound:
        return ModelNotFound(f"The model '{model}' does not exist or you do not have access to it.", param="model")

    async def resolve(self, model: str, principal: Principal, *, user: str | None = None) -> RouteTarget:
        """The target for ``model``, counted in flight until :meth:`leave`; :class:`ModelNotFound`
        if absent or not visible to this key (the two look the same on purpose)."""
        if model == self.base_model_name:
            return RouteTarget(model=model)
        name, sep, number = model.partition("@")
        if sep:
            version = await self._pinned_version(model, name, number, principal)
        else:
            version = self._alias_version(model, name, principal, user)
        return await self._admit(model, version)

    def _alias_version(self, model: str, name: str, principal: Principal, user: str | None) -> ServableVersion:
        route = self._routes.get(name)
        if route is None:
            wanted = self._latest.get(name)
            if wanted is not None and wanted.versions and _visible(principal, wanted.versions[0]):
                raise EngineUnavailable(f"The model '{model}' is not loaded on this server yet; retry shortly.")
            raise self._not_found(model)
        if not _visible(principal, route.versions[0]):
            raise self._not_found(model)
        canary = route.canary
        if canary is not None and self.residency.is_withdrawn(canary.version_id):
            canary = None  # being deleted: its share goes back to the active version
        if canary is not None and (route.active is None or canary_draw(name, user) < route.canary_weight):
            return canary
        if route.active is None:
            raise self._not_found(model)
        return route.active

    async def _pinned_version(self, model: str, name: str, number: str, principal: Principal) -> ServableVersion:
        if not VERSION_NUMBER.fullmatch(number) or int(number) > DB_INT_MAX:
            raise self._not_found(model)
        wanted = int(number)
        route = self._routes.get(name)
        version = next((v for v in route.versions if v.version == wanted), None) if route else None
        if version is None:
            try:
                version = await asyncio.to_thread(self._version_from_registry, name, wanted, principal)
            except AdapterNotFound:
                raise self._not_found(model) from None
            except ArtifactCorrupt as exc:
                logger.error("%s is not served: %s", model, exc)
                raise EngineUnavailable(f"The model '{model}' cannot be served right now.") from None
        if not _visible(principal, version):
            raise self._not_found(model)
        if version.status not in SERVING_STATUSES and not principal.may_evaluate:
            raise self._not_found(model)
        return version

    def _version_from_registry(self, name: str, number: int, principal: Principal) -> ServableVersion:
        """Any version built for the served base, whatever its status: who may call it is decided
        here by status and key (``get_servable`` refuses rejected versions, which evaluators may call).
        Visibility is checked on the rows, before the artifact is touched: another tenant's key
        must learn nothing, not even that the files exist or are damaged."""
        with session_scope(self._db) as session:
            adapter = require_adapter(session=session, name=name)
            row = require_version(session=session, adapter=adapter, version=number)
            if row.base_fingerprint != self.base_fingerprint:
                raise AdapterNotFound(f"{name}@{number} was built for another base model", param="model")
            if not principal.may_use(adapter.name, tenant=adapter.tenant, shared=adapter.shared) or (
                row.status not in SERVING_STATUSES and not principal.may_evaluate
            ):
                raise AdapterNotFound(f"{name}@{number} is not visible to this key", param="model")
            assert row.id is not None
            return ServableVersion(
                adapter=adapter.name,
                version=row.version,
                version_id=row.id,
                path=self._store.local_path(row.artifact_uri, sha256=row.sha256),
                tenant=adapter.tenant,
                shared=adapter.shared,
                status=row.status,
            )

    async def _admit(self, model: str, version: ServableVersion) -> RouteTarget:
        version_id = version.version_id
        if self.residency.is_withdrawn(version_id):
            raise self._not_found(model)  # being deleted
        await self.residency.enter(version_id)  # may wait for an engine slot
        if self.residency.is_withdrawn(version_id):  # deleted while it waited
            self.residency.leave(version_id)
            raise self._not_found(model)
        try:
            if self._engine.is_ready:  # otherwise generation answers 503 anyway
                await self.residency.ensure_loaded(version, warm=False)
        except AdapterLoadError:
            self.residency.leave(version_id)
            raise EngineUnavailable(
                f"The engine could not load '{version.qualified_name}'; it cannot be served now."
            ) from None
        except BaseException:
            self.residency.leave(version_id)
            raise
        return RouteTarget(model=model, version=version)

    @asynccontextmanager
    async def hold(self, version: ServableVersion | None) -> AsyncIterator[None]:
        """Run internal requests for ``version`` (the evaluation gate's) as a served request
        runs: admitted to an engine slot, loaded, and counted in flight until the block ends."""
        if version is None:
            yield
            return
        target = await self._admit(version.qualified_name, version)
        try:
            yield
        finally:
            self.leave(target)

    def models_for(self, principal: Principal) -> list[ModelCard]:
        base = self.base_model_name
        cards = [ModelCard(id=base, created=self._created, root=base, parent=None)]
        for name, route in sorted(self._routes.items()):
            if route.active is not None and _visible(principal, route.active):
                cards.append(ModelCard(id=name, created=self._created, root=route.active.qualified_name, parent=base))
        return cards

    # -- in-flight accounting and retirement ----------------------------------------------

    def leave(self, target: RouteTarget) -> None:
        """The request that :meth:`resolve` returned ``target`` for has ended."""
        if target.version is not None:
            self.residency.leave(target.version.version_id)

    def in_flight(self, version_id: int) -> int:
        return self.residency.in_flight(version_id)

    async def withdraw(self, version_id: int) -> None:
        """Stop routing to ``version_id``, wait for its requests, unload it (before its files go)."""
        await self.residency.withdraw(version_id)

    def restore(self, version_id: int) -> None:
        self.residency.restore(version_id)

    def forget(self, version_id: int) -> None:
        self.residency.forget(version_id)

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

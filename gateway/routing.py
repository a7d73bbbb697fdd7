"""Model-name routing: ``base``, ``alias`` (its active version) or ``alias@version`` (pinned).

The router keeps an in-memory snapshot of every alias's active version and replaces it whole
on refresh, so a request sees either the old map or the new one, never a mix.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from vllm.lora.request import LoRARequest

from adapters.errors import AdapterNotFound
from adapters.registry import ServableVersion, get_servable, servable_versions
from adapters.store import ArtifactStore
from gateway.auth.models import Principal
from gateway.exceptions import ModelNotFound
from switchyard.db import session_scope

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouteTarget:
    """Where one request goes: the base model, or one exact adapter version."""

    model: str
    version: ServableVersion | None = None

    @property
    def lora_request(self) -> LoRARequest | None:
        if self.version is None:
            return None
        # The version's database id is its engine slot id: two versions never share a slot.
        return LoRARequest(
            lora_name=self.version.qualified_name,
            lora_int_id=self.version.version_id,
            lora_path=str(self.version.path),
        )


@dataclass(frozen=True)
class ModelCard:
    id: str
    created: int
    root: str
    """What ``id`` resolves to now: the base, or the exact ``alias@version``."""
    parent: str | None


class ModelRouter:
    def __init__(self, *, base_model_name: str, db: Engine, store: ArtifactStore) -> None:
        self.base_model_name = base_model_name
        self._db = db
        self._store = store
        self._active: dict[str, ServableVersion] = {}
        self._created = int(time.time())
        self._task: asyncio.Task[None] | None = None

    def refresh(self) -> None:
        """Re-read the registry (blocking; call from a thread)."""
        with session_scope(self._db) as session:
            snapshot = servable_versions(session=session, store=self._store)
        self._active = snapshot

    def _not_found(self, model: str) -> ModelNotFound:
        return ModelNotFound(f"The model '{model}' does not exist or you do not have access to it.", param="model")

    async def resolve(self, model: str, principal: Principal) -> RouteTarget:
        """The target for ``model``; :class:`ModelNotFound` if absent or not allowed for this key."""
        if model == self.base_model_name:
            return RouteTarget(model=model)
        name, sep, pinned = model.partition("@")
        if not principal.may_use(name):
            raise self._not_found(model)
        if not sep:
            version = self._active.get(name)
            if version is None:
                raise self._not_found(model)
            return RouteTarget(model=model, version=version)
        if not pinned.isdigit():
            raise self._not_found(model)
        try:
            version = await asyncio.to_thread(self._pinned, name, int(pinned))
        except AdapterNotFound:
            raise self._not_found(model) from None
        return RouteTarget(model=model, version=version)

    def _pinned(self, name: str, version: int) -> ServableVersion:
        with session_scope(self._db) as session:
            return get_servable(session=session, store=self._store, name=name, version=version)

    def models_for(self, principal: Principal) -> list[ModelCard]:
        base = self.base_model_name
        cards = [ModelCard(id=base, created=self._created, root=base, parent=None)]
        for name, version in sorted(self._active.items()):
            if principal.may_use(name):
                cards.append(ModelCard(id=name, created=self._created, root=version.qualified_name, parent=base))
        return cards

    async def _poll(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as exc:  # keep serving the last snapshot while the database is away
                logger.warning("registry refresh failed: %s", exc)

    def start_polling(self, interval_s: float) -> None:
        self._task = asyncio.create_task(self._poll(interval_s), name="registry-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

"""The tuner's view of the registry and the engine (``tuner.jobs.pipeline.CandidateRegistry``).

Every change goes through the registry service, as an admin's would: a candidate is validated,
stored and load-checked by the engine; promotion loads and warms it before the alias moves (the
hot-swap), so no request fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.registry import ServableVersion, get_adapter, version_by_id
from gateway.registry.service import RegistryService
from switchyard.db import run_in_session
from tuner.gate.scoring import Scorer
from tuner.jobs.pipeline import AdapterState


class RegistryCandidates:
    def __init__(self, *, db: Engine, registry: RegistryService, scorer: Scorer) -> None:
        self._db = db
        self._registry = registry
        self._scorer = scorer

    async def adapter_state(self, adapter: str) -> AdapterState:
        def read(session: Session) -> tuple[AdapterState, int | None]:
            row = get_adapter(session=session, name=adapter)
            if row is None:
                return AdapterState(exists=False), None
            active = version_by_id(session=session, version_id=row.active_version_id)
            state = AdapterState(exists=True, tenant=row.tenant, task_checks=dict(row.task_checks))
            return state, active.version if active else None

        state, active = await run_in_session(self._db, read)
        if active is None:
            return state
        return AdapterState(
            exists=True,
            tenant=state.tenant,
            champion=await self._registry.servable(adapter, active),
            task_checks=state.task_checks,
        )

    async def version(self, adapter: str, number: int) -> ServableVersion:
        return await self._registry.servable(adapter, number)

    async def register_candidate(
        self,
        adapter: str,
        folder: Path,
        *,
        tenant: str | None,
        parent_version: int | None,
        dataset_snapshot_id: str,
        metrics: dict[str, Any],
        label: str,
    ) -> ServableVersion:
        row = await self._registry.register_trained(
            adapter,
            folder,
            tenant=tenant,
            description=f"created by {label}",
            parent_version=parent_version,
            dataset_snapshot_id=dataset_snapshot_id,
            metrics=metrics,
        )
        return await self._registry.servable(adapter, row.version)

    async def record_gate(self, adapter: str, number: int, gate: dict[str, Any]) -> None:
        await self._registry.record_metrics(adapter, number, "gate", gate)

    async def promote(self, adapter: str, number: int) -> None:
        await self._registry.promote(adapter, number)

    async def start_canary(self, adapter: str, number: int, weight: float) -> None:
        await self._registry.canary(adapter, number, weight)

    async def reject(self, adapter: str, number: int, reason: str) -> None:
        await self._registry.reject(adapter, number, reason)

    def scorer(self) -> Scorer:
        return self._scorer

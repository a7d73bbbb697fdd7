"""Tuning policies as the admin API reads and writes them.

The tuner validates a policy before it is stored. After a write the refresh schedule of this
process follows at once; a scheduler in another process picks the change up within its sync
interval.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.registry import require_adapter
from gateway.admin.tuning_policy_protocol import TuningPolicyView
from switchyard.db import run_in_session
from tuner.exceptions import TuningResourceNotFound
from tuner.policies import TuningPolicy, TuningPolicyBase, delete_policy, get_policy, upsert_policy
from tuner.scheduling import RefreshScheduler

logger = logging.getLogger(__name__)


class TuningPolicyService:
    def __init__(self, *, db: Engine, scheduler: RefreshScheduler | None) -> None:
        self._db = db
        self._scheduler = scheduler

    def _scheduling(self) -> RefreshScheduler | None:
        return self._scheduler if self._scheduler is not None and self._scheduler.running else None

    async def _view(self, row: TuningPolicy) -> TuningPolicyView:
        scheduler = self._scheduling()
        next_run = await asyncio.to_thread(scheduler.next_run_time, row.adapter) if scheduler else None
        return TuningPolicyView.model_validate(row, update={"next_run_at": next_run})

    async def _sync(self) -> None:
        scheduler = self._scheduling()
        if scheduler is None:
            return
        try:
            await asyncio.to_thread(scheduler.sync)
        except Exception:
            # The policy is stored, and that is what the caller asked for: the periodic sync
            # brings the schedule in line once the database answers again.
            logger.exception("could not sync the refresh schedule after a policy change")

    async def get(self, name: str) -> TuningPolicyView:
        def work(session: Session) -> TuningPolicy:
            require_adapter(session=session, name=name)
            row = get_policy(session=session, adapter=name)
            if row is None:
                raise TuningResourceNotFound(
                    f"Adapter {name!r} has no tuning policy: it is tuned on demand, with the defaults.", param="name"
                )
            return row

        return await self._view(await run_in_session(self._db, work))

    async def put(self, name: str, body: TuningPolicyBase) -> TuningPolicyView:
        row = await run_in_session(self._db, lambda s: upsert_policy(session=s, adapter=name, policy_in=body))
        await self._sync()
        return await self._view(row)

    async def delete(self, name: str) -> None:
        def work(session: Session) -> bool:
            require_adapter(session=session, name=name)
            return delete_policy(session=session, adapter=name)

        if not await run_in_session(self._db, work):
            raise TuningResourceNotFound(f"Adapter {name!r} has no tuning policy.", param="name")
        await self._sync()

"""Feedback on a logged completion, by the key that made it, a reviewer of its tenant, or the admin."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from gateway.auth.models import Principal
from gateway.exceptions import ResourceNotFound
from gateway.traffic.drain import LogDrain
from switchyard.db import session_scope
from switchyard.traffic import crud
from switchyard.traffic.models import FeedbackCreate, FeedbackPublic


@dataclass(frozen=True)
class Owner:
    """Who made a logged completion."""

    found: bool
    key_id: int | None
    tenant: str | None


class FeedbackService:
    def __init__(self, *, db: Engine, drain: LogDrain, read_wait_s: float) -> None:
        self._db = db
        self._drain = drain
        self._read_wait_s = read_wait_s

    def _owner_of(self, completion_id: str) -> Owner:
        with session_scope(self._db) as session:
            row = crud.get_log(session=session, request_id=completion_id)
            return Owner(found=row is not None, key_id=row.key_id if row else None, tenant=row.tenant if row else None)

    def _store_row(self, row: dict[str, Any]) -> None:
        # Idempotent by id: when the drain reaches this row later, its insert skips it.
        crud.insert_logs_idempotent(engine=self._db, records=[row])

    def _store(self, feedback_in: FeedbackCreate, principal: Principal) -> FeedbackPublic:
        with session_scope(self._db) as session:
            row = crud.create_feedback(
                session=session,
                feedback_in=feedback_in,
                key_id=principal.key_id,
                tenant=principal.tenant,
                reviewer=principal.is_reviewer,
            )
            return FeedbackPublic.model_validate(row)

    async def _find(self, completion_id: str) -> Owner:
        owner = await asyncio.to_thread(self._owner_of, completion_id)
        if owner.found:
            return owner
        # A client can send feedback right after the answer, before the drain stored the row:
        # store that one row now (the feedback row needs it), rather than wait for the whole spool.
        pending = await self._drain.pending_row(completion_id)
        if pending is not None:
            await asyncio.to_thread(self._store_row, pending)
        else:  # not indexed (spooled by an earlier process): wait, bounded, for the drain
            await self._drain.caught_up(timeout_s=self._read_wait_s)
        return await asyncio.to_thread(self._owner_of, completion_id)

    async def submit(self, feedback_in: FeedbackCreate, *, principal: Principal) -> FeedbackPublic:
        """Store feedback from the completion's key, a reviewer key of the same tenant (people
        who label an application's traffic use their own key, not the application's), or the
        admin. The row records whether a reviewer gave it: only reviewers' corrections are
        trained on."""
        owner = await self._find(feedback_in.completion_id)
        reviews_tenant = principal.is_reviewer and principal.key_id is not None and owner.tenant == principal.tenant
        if not owner.found or not (principal.owns(owner.key_id) or reviews_tenant):
            raise ResourceNotFound(f"No completion with id '{feedback_in.completion_id}'.", param="completion_id")
        return await asyncio.to_thread(self._store, feedback_in, principal)

"""Feedback on a logged completion, by the key that made it or by the admin."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.engine import Engine

from gateway.auth.models import Principal
from gateway.exceptions import ResourceNotFound
from gateway.traffic.drain import LogDrain
from switchyard.db import session_scope
from switchyard.traffic import crud
from switchyard.traffic.models import FeedbackCreate, FeedbackPublic


class FeedbackService:
    def __init__(self, *, db: Engine, drain: LogDrain, read_wait_s: float) -> None:
        self._db = db
        self._drain = drain
        self._read_wait_s = read_wait_s

    def _owner_of(self, completion_id: str) -> tuple[bool, int | None]:
        with session_scope(self._db) as session:
            row = crud.get_log(session=session, request_id=completion_id)
            return (row is not None, row.key_id if row else None)

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

    async def _find(self, completion_id: str) -> tuple[bool, int | None]:
        found, owner = await asyncio.to_thread(self._owner_of, completion_id)
        if found:
            return found, owner
        # A client can send feedback right after the answer, before the drain stored the row:
        # store that one row now (the feedback row needs it), rather than wait for the whole spool.
        pending = await self._drain.pending_row(completion_id)
        if pending is not None:
            await asyncio.to_thread(self._store_row, pending)
        else:  # not indexed (spooled by an earlier process): wait, bounded, for the drain
            await self._drain.caught_up(timeout_s=self._read_wait_s)
        return await asyncio.to_thread(self._owner_of, completion_id)

    async def submit(self, feedback_in: FeedbackCreate, *, principal: Principal) -> FeedbackPublic:
        """Store feedback from the completion's key (or the admin). Anyone may score or correct;
        the row records whether a reviewer did, since only reviewers' corrections may be trained on."""
        found, owner = await self._find(feedback_in.completion_id)
        if not found or not principal.owns(owner):
            raise ResourceNotFound(f"No completion with id '{feedback_in.completion_id}'.", param="completion_id")
        return await asyncio.to_thread(self._store, feedback_in, principal)

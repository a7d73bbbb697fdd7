"""Feedback on a logged completion, by the key that made it or by the admin."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine

from gateway.auth.models import Principal
from gateway.exceptions import ResourceNotFound
from gateway.traffic.drain import LogDrain
from switchyard.db import session_scope
from switchyard.traffic import crud
from switchyard.traffic.models import FeedbackCreate, FeedbackPublic


class FeedbackService:
    def __init__(self, *, db: Engine, drain: LogDrain) -> None:
        self._db = db
        self._drain = drain

    def _owner_of(self, completion_id: str) -> tuple[bool, int | None]:
        with session_scope(self._db) as session:
            row = crud.get_log(session=session, request_id=completion_id)
            return (row is not None, row.key_id if row else None)

    def _store(self, feedback_in: FeedbackCreate, key_id: int | None) -> FeedbackPublic:
        with session_scope(self._db) as session:
            row = crud.create_feedback(session=session, feedback_in=feedback_in, key_id=key_id)
            return FeedbackPublic.model_validate(row)

    async def submit(self, feedback_in: FeedbackCreate, *, principal: Principal) -> FeedbackPublic:
        found, owner = await asyncio.to_thread(self._owner_of, feedback_in.completion_id)
        if not found:
            # The row may still be in the spool: a client can send feedback right after the answer.
            await self._drain.flush()
            found, owner = await asyncio.to_thread(self._owner_of, feedback_in.completion_id)
        if not found or not principal.owns(owner):
            raise ResourceNotFound(f"No completion with id '{feedback_in.completion_id}'.", param="completion_id")
        return await asyncio.to_thread(self._store, feedback_in, principal.key_id)

"""Reading the traffic log for admins.

A read first waits, at most ``read_wait_s``, for the rows recorded before it to reach the
database (the ones the caller could have seen answered), then answers from the database
whatever the drain's state: a long backlog or a database outage never holds a read hostage.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from adapters.models import NAME_PATTERN
from gateway.exceptions import ResourceNotFound
from gateway.traffic.drain import LogDrain
from switchyard.db import DB_INT_MAX, session_scope
from switchyard.traffic import crud
from switchyard.traffic.models import FeedbackPublic, RequestLogBase, RequestLogPublic, RequestLogsPublic


class RequestFilters(BaseModel):
    adapter: str | None = Field(default=None, pattern=NAME_PATTERN, description="Adapter name")
    key_id: int | None = Field(default=None, ge=1, le=DB_INT_MAX, description="API key id")
    status: int | None = Field(default=None, ge=100, le=599, description="HTTP status")
    since: datetime | None = Field(default=None, description="Earliest time, inclusive")
    until: datetime | None = Field(default=None, description="Latest time, exclusive")
    offset: int = Field(default=0, ge=0, le=DB_INT_MAX)
    limit: int = Field(default=50, ge=1, le=500)


class TrafficLogService:
    def __init__(self, *, db: Engine, drain: LogDrain, read_wait_s: float) -> None:
        self._db = db
        self._drain = drain
        self._read_wait_s = read_wait_s

    def _list(self, filters: RequestFilters) -> RequestLogsPublic:
        with session_scope(self._db) as session:
            rows, count = crud.list_logs(session=session, **filters.model_dump())
        return RequestLogsPublic(data=[RequestLogBase.model_validate(r) for r in rows], count=count)

    def _get(self, request_id: str) -> RequestLogPublic:
        with session_scope(self._db) as session:
            row = crud.get_log(session=session, request_id=request_id)
            if row is None:
                raise ResourceNotFound(f"No logged request with id '{request_id}'.", param="request_id")
            feedback = [
                FeedbackPublic.model_validate(f) for f in crud.list_feedback(session=session, request_id=request_id)
            ]
            return RequestLogPublic.model_validate(row, update={"feedback": feedback})

    async def list(self, filters: RequestFilters) -> RequestLogsPublic:
        await self._drain.caught_up(timeout_s=self._read_wait_s)
        return await asyncio.to_thread(self._list, filters)

    async def get(self, request_id: str) -> RequestLogPublic:
        await self._drain.caught_up(timeout_s=self._read_wait_s)
        return await asyncio.to_thread(self._get, request_id)

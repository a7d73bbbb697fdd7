"""Reading the traffic log for admins.

A read first waits, at most ``read_wait_s``, for the rows recorded before it to reach the
database (the ones the caller could have seen answered), then answers from the database
whatever the drain's state: a long backlog or a database outage never holds a read hostage.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from adapters.models import NAME_PATTERN
from gateway.exceptions import InvalidRequest, ResourceNotFound
from gateway.traffic.drain import LogDrain
from switchyard.db import DB_INT_MAX, session_scope, utcnow
from switchyard.traffic import crud
from switchyard.traffic.models import FeedbackPublic, RequestLogBase, RequestLogPublic, RequestLogsPublic
from switchyard.traffic.stats import TrafficStats, adapter_traffic


class RequestFilters(BaseModel):
    adapter: str | None = Field(default=None, pattern=NAME_PATTERN, description="Adapter name")
    key_id: int | None = Field(default=None, ge=1, le=DB_INT_MAX, description="API key id")
    status: int | None = Field(default=None, ge=100, le=599, description="HTTP status")
    since: datetime | None = Field(default=None, description="Earliest time, inclusive")
    until: datetime | None = Field(default=None, description="Latest time, exclusive")
    offset: int = Field(default=0, ge=0, le=DB_INT_MAX)
    limit: int = Field(default=50, ge=1, le=500)


MAX_BUCKETS = 2000
MAX_STATS_ROWS = 100_000
"""Most logged requests one traffic read aggregates (newest first)."""


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class TrafficQuery(BaseModel):
    adapter: str = Field(pattern=NAME_PATTERN, description="Adapter name")
    since: datetime | None = Field(default=None, description="Start of the window (default: 24 h before until)")
    until: datetime | None = Field(default=None, description="End of the window, exclusive (default: now)")
    bucket_s: int = Field(default=300, ge=10, le=86_400, description="Bucket width in seconds")


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

    async def traffic(self, query: TrafficQuery) -> TrafficStats:
        """The adapter's requests, errors, latency, tokens and feedback over time."""
        # A time without an offset is UTC, as the log stores it (comparing it with an aware one
        # would fail).
        until = _aware(query.until) if query.until else utcnow()
        since = _aware(query.since) if query.since else until - timedelta(days=1)
        if since >= until:
            raise InvalidRequest("since must be before until", param="since")
        if (until - since).total_seconds() / query.bucket_s > MAX_BUCKETS:
            raise InvalidRequest(f"at most {MAX_BUCKETS} buckets: widen bucket_s", param="bucket_s")
        await self._drain.caught_up(timeout_s=self._read_wait_s)

        def read() -> TrafficStats:
            with session_scope(self._db) as session:
                return adapter_traffic(
                    session=session,
                    adapter=query.adapter,
                    since=since,
                    until=until,
                    bucket_s=query.bucket_s,
                    max_rows=MAX_STATS_ROWS,
                )

        return await asyncio.to_thread(read)

    async def get(self, request_id: str) -> RequestLogPublic:
        await self._drain.caught_up(timeout_s=self._read_wait_s)
        return await asyncio.to_thread(self._get, request_id)

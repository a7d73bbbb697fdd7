"""Drift checks and their history as the admin API reads them.

A check is blocking work (database reads, pandas, scikit-learn, Evidently): it runs on a worker
thread, never in the event loop. It first waits, at most ``read_wait_s``, for the requests
already answered to reach the database, so that a check sees the traffic just served.
"""

from __future__ import annotations

import asyncio
import gzip
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from cachetools import TTLCache
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.registry import require_adapter
from gateway.drift.protocol import DriftResultsView, DriftResultView, DriftRunRequest, ReportLink
from gateway.exceptions import ResourceNotFound
from gateway.traffic.drain import LogDrain
from monitoring.drift.crud import get_result, list_results
from monitoring.drift.models import DriftResult, DriftTrigger, Windows, to_public
from monitoring.drift.monitor import DriftMonitor
from switchyard.db import run_in_session

T = TypeVar("T")


def report_url(result_id: int) -> str:
    """Where the admin API serves a result's report."""
    return f"/admin/drift/{result_id}/report"


def view(row: DriftResult) -> DriftResultView:
    assert row.id is not None
    url = report_url(row.id) if row.report_file is not None else None
    return DriftResultView.model_validate(to_public(row).model_dump(), update={"report_url": url})


REPORT_LINK_TTL_S = 300
"""How long a report link (``POST /admin/drift/{id}/report-link``) opens the report."""


class DriftService:
    def __init__(self, *, db: Engine, monitor: DriftMonitor, drain: LogDrain, read_wait_s: float) -> None:
        self._db = db
        self._monitor = monitor
        self._drain = drain
        self._read_wait_s = read_wait_s
        self._links: TTLCache[str, int] = TTLCache(maxsize=4096, ttl=REPORT_LINK_TTL_S)
        # Checks run one at a time anyway (the monitor's lock): on a thread of their own, so that
        # callers waiting for one never take the event loop's shared worker threads (traffic
        # reads, gauges, the log drain use those).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-check")

    async def _checking(self, check: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(check, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def monitor(self) -> DriftMonitor:
        return self._monitor

    async def run(self, body: DriftRunRequest) -> DriftResultView | DriftResultsView:
        """Check one adapter (its stored result) or every adapter (theirs, by name)."""
        windows = Windows(
            reference=body.reference_window.window() if body.reference_window else None,
            current=body.current_window.window() if body.current_window else None,
        )
        await self._drain.caught_up(timeout_s=self._read_wait_s)
        if body.adapter is not None:
            row = await self._checking(self._monitor.check, body.adapter, trigger=DriftTrigger.api, windows=windows)
            return view(row)
        rows = await self._checking(self._monitor.check_all, trigger=DriftTrigger.api, windows=windows)
        return DriftResultsView(data=[view(row) for row in rows], count=len(rows))

    async def history(self, adapter: str | None, *, offset: int, limit: int) -> DriftResultsView:
        def work(session: Session) -> tuple[list[DriftResult], int]:
            if adapter is not None:
                require_adapter(session=session, name=adapter)
            return list_results(session=session, adapter=adapter, offset=offset, limit=limit)

        rows, count = await run_in_session(self._db, work)
        return DriftResultsView(data=[view(row) for row in rows], count=count)

    async def _row(self, result_id: int) -> DriftResult:
        row = await run_in_session(self._db, lambda s: get_result(session=s, result_id=result_id))
        if row is None:
            raise ResourceNotFound(f"No drift result with id {result_id}.", param="result_id")
        return row

    async def get(self, result_id: int) -> DriftResultView:
        return view(await self._row(result_id))

    async def report_link(self, result_id: int) -> ReportLink:
        """A short-lived capability URL for the report, for browsers (an ``iframe`` or a new tab
        cannot send the admin key). The link names no result id; it opens one report, for
        ``REPORT_LINK_TTL_S`` seconds, on this replica."""
        row = await self._row(result_id)
        if row.report_file is None:
            raise ResourceNotFound(f"Drift result {result_id} has no report.", param="result_id")
        token = secrets.token_urlsafe(32)
        self._links[token] = result_id
        return ReportLink(url=f"/dashboard/reports/{token}", expires_in=REPORT_LINK_TTL_S)

    async def report_by_link(self, token: str) -> bytes:
        result_id = self._links.get(token)
        if result_id is None:
            raise ResourceNotFound("This report link is unknown or has expired.", param="token")
        return await self.report(result_id, gzipped=False)

    async def report(self, result_id: int, *, gzipped: bool) -> bytes:
        """The result's HTML report, as stored (gzipped) or decompressed."""
        row = await self._row(result_id)
        missing = ResourceNotFound(f"Drift result {result_id} has no report.", param="result_id")
        if row.report_file is None:
            raise missing
        path = self._monitor.workspace.report_path(row.report_file)

        def read() -> bytes:
            payload = path.read_bytes()
            return payload if gzipped else gzip.decompress(payload)

        try:
            return await asyncio.to_thread(read)
        except FileNotFoundError:
            raise missing from None

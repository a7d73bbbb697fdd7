from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from adapters.models import NAME_PATTERN
from gateway.deps import AdminDep, ServicesDep
from gateway.drift.protocol import DriftResultsView, DriftResultView, DriftRunRequest, ReportLink
from gateway.drift.service import DriftService
from gateway.error_responses import ADMIN_ERROR_RESPONSES
from switchyard.db import DB_INT_MAX

router = APIRouter(prefix="/admin/drift", tags=["drift"], responses=ADMIN_ERROR_RESPONSES)

# Evidently's report is one HTML page with inline scripts and styles. It runs sandboxed (an
# opaque origin: no access to the dashboard's storage or cookies) and may load nothing.
REPORT_HEADERS = {
    "Content-Security-Policy": (
        "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


ResultIdPath = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="Drift result id")]
AdapterQuery = Annotated[str | None, Query(pattern=NAME_PATTERN, description="Only this adapter's results")]


async def get_drift(services: ServicesDep, _admin: AdminDep) -> DriftService:
    return services.drift


DriftDep = Annotated[DriftService, Depends(get_drift)]


@router.post("/run", response_model=DriftResultView | DriftResultsView)
async def run_drift(drift: DriftDep, body: DriftRunRequest | None = None) -> DriftResultView | DriftResultsView:
    """Check an adapter's current traffic against its reference now (Evidently's
    ``DataDriftPreset``), store the result and act on a drifted verdict. Without ``adapter``,
    every adapter is checked and the list is returned."""
    return await drift.run(body or DriftRunRequest())


@router.get("", response_model=DriftResultsView)
async def list_drift(
    drift: DriftDep,
    adapter: AdapterQuery = None,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DriftResultsView:
    """Stored results, newest first."""
    return await drift.history(adapter, offset=offset, limit=limit)


@router.get("/{result_id}", response_model=DriftResultView)
async def get_drift_result(result_id: ResultIdPath, drift: DriftDep) -> DriftResultView:
    return await drift.get(result_id)


@router.get(
    "/{result_id}/report",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "Evidently's HTML report"}},
)
async def get_drift_report(result_id: ResultIdPath, drift: DriftDep, request: Request) -> Response:
    """The result's Evidently report, a self-contained HTML page (sent gzipped to clients that
    accept it)."""
    gzipped = "gzip" in request.headers.get("accept-encoding", "")
    # Sandboxed wherever it is opened: the report quotes logged prompts inside its scripts.
    headers = REPORT_HEADERS | {"Vary": "Accept-Encoding"} | ({"Content-Encoding": "gzip"} if gzipped else {})
    return Response(await drift.report(result_id, gzipped=gzipped), media_type="text/html", headers=headers)


@router.post("/{result_id}/report-link", response_model=ReportLink)
async def create_report_link(result_id: ResultIdPath, drift: DriftDep) -> ReportLink:
    """A short-lived link that opens the report in a browser without the admin key (the
    dashboard embeds it)."""
    return await drift.report_link(result_id)

"""``/dashboard``: the page and its assets.

The page holds no data: it asks for the admin key, keeps it in the tab's ``sessionStorage`` and
reads everything through the same admin API the CLI uses, so the dashboard can show nothing the
key could not read anyway. Assets are package files, so nothing is fetched from elsewhere.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, Response

from gateway.deps import ServicesDep
from gateway.drift.router import REPORT_HEADERS
from gateway.exceptions import ResourceNotFound

router = APIRouter(tags=["dashboard"], include_in_schema=False)

ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
# The page runs only its own script: no inline code, no other origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _asset(name: str) -> str:
    return resources.files("gateway.dashboard").joinpath("static", name).read_text(encoding="utf-8")


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard() -> HTMLResponse:
    return HTMLResponse(_asset("index.html"), headers=SECURITY_HEADERS)


@router.get("/dashboard/reports/{token}", response_class=HTMLResponse)
async def report(token: Annotated[str, Path(max_length=64)], services: ServicesDep) -> HTMLResponse:
    """A drift report through a link from ``POST /admin/drift/{id}/report-link``."""
    html = await services.drift.report_by_link(token)
    return HTMLResponse(html, headers=REPORT_HEADERS)


@router.get("/dashboard/static/{name}")
async def asset(name: Annotated[str, Path(max_length=64)]) -> Response:
    if name not in ASSETS:
        raise ResourceNotFound(f"No dashboard asset '{name}'.", param="name")
    return Response(_asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)

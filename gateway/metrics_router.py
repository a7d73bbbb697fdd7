from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.deps import AdminDep, ServicesDep
from gateway.errors import ADMIN_ERROR_RESPONSES
from monitoring.metrics import PROMETHEUS_CONTENT_TYPE

router = APIRouter(tags=["monitoring"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={**ADMIN_ERROR_RESPONSES, 200: {"content": {PROMETHEUS_CONTENT_TYPE: {}}}},
)
async def metrics(services: ServicesDep, _admin: AdminDep) -> Response:
    """Prometheus exposition (admin key: the labels name every adapter)."""
    return Response(services.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

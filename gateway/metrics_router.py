from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.deps import MetricsReaderDep, ServicesDep
from gateway.error_responses import ADMIN_ERROR_RESPONSES
from monitoring.metrics import PROMETHEUS_CONTENT_TYPE

router = APIRouter(tags=["monitoring"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={**ADMIN_ERROR_RESPONSES, 200: {"content": {PROMETHEUS_CONTENT_TYPE: {}}}},
)
async def metrics(services: ServicesDep, _reader: MetricsReaderDep) -> Response:
    """Prometheus exposition, for the metrics token (``<data_dir>/metrics.key`` in development) or
    the admin key: the labels name every adapter, so it is not public."""
    return Response(await services.metrics.scrape(), media_type=PROMETHEUS_CONTENT_TYPE)

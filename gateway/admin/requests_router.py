from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import AdminDep, RequestIdPath, ServicesDep
from gateway.error_responses import ADMIN_ERROR_RESPONSES
from gateway.traffic.service import RequestFilters, TrafficQuery
from switchyard.traffic.models import RequestLogPublic, RequestLogsPublic
from switchyard.traffic.stats import TrafficStats

router = APIRouter(prefix="/admin/requests", tags=["admin"])
traffic_router = APIRouter(prefix="/admin/traffic", tags=["admin"])


@router.get("", response_model=RequestLogsPublic, responses=ADMIN_ERROR_RESPONSES)
async def list_requests(
    filters: Annotated[RequestFilters, Query()], services: ServicesDep, _admin: AdminDep
) -> RequestLogsPublic:
    return await services.traffic.list(filters)


@router.get("/{request_id}", response_model=RequestLogPublic, responses=ADMIN_ERROR_RESPONSES)
async def get_request(request_id: RequestIdPath, services: ServicesDep, _admin: AdminDep) -> RequestLogPublic:
    return await services.traffic.get(request_id)


@traffic_router.get("", response_model=TrafficStats, responses=ADMIN_ERROR_RESPONSES)
async def adapter_traffic(
    query: Annotated[TrafficQuery, Query()], services: ServicesDep, _admin: AdminDep
) -> TrafficStats:
    """One adapter's requests, errors, latency percentiles, tokens and feedback, bucketed over time
    (what the dashboard plots)."""
    return await services.traffic.traffic(query)

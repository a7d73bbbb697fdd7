from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import AdminDep, RequestIdPath, ServicesDep
from gateway.error_responses import ADMIN_ERROR_RESPONSES
from gateway.traffic.service import RequestFilters
from switchyard.traffic.models import RequestLogPublic, RequestLogsPublic

router = APIRouter(prefix="/admin/requests", tags=["admin"])


@router.get("", response_model=RequestLogsPublic, responses=ADMIN_ERROR_RESPONSES)
async def list_requests(
    filters: Annotated[RequestFilters, Query()], services: ServicesDep, _admin: AdminDep
) -> RequestLogsPublic:
    return await services.traffic.list(filters)


@router.get("/{request_id}", response_model=RequestLogPublic, responses=ADMIN_ERROR_RESPONSES)
async def get_request(request_id: RequestIdPath, services: ServicesDep, _admin: AdminDep) -> RequestLogPublic:
    return await services.traffic.get(request_id)

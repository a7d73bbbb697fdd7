from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from gateway.deps import ServicesDep
from gateway.errors import ErrorResponse
from gateway.exceptions import EngineUnavailable

router = APIRouter(tags=["health"])


class HealthStatus(BaseModel):
    status: Literal["ok", "ready"]


@router.get("/health", response_model=HealthStatus)
async def health() -> HealthStatus:
    """The process is alive and serving HTTP."""
    return HealthStatus(status="ok")


@router.get("/ready", response_model=HealthStatus, responses={503: {"model": ErrorResponse}})
async def ready(services: ServicesDep) -> HealthStatus:
    """The engine is loaded and takes requests."""
    if not services.engine.is_ready:
        raise EngineUnavailable("The model engine is not ready yet.")
    return HealthStatus(status="ready")

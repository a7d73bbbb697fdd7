"""Liveness and readiness.

``/health`` says whether this process can serve, now or once its engine has loaded: 200 while
the engine starts for the first time or runs, 503 (``engine_dead``) while a dead engine is being
replaced, so an orchestrator sees the truth even though the supervisor restarts it by itself.
``/ready`` is 200 only while the engine takes requests, and says how far this replica follows
the registry (informational: it stays 200 while it serves).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from gateway.deps import ServicesDep
from gateway.engine.protocol import EngineState
from gateway.error_responses import ErrorResponse
from gateway.exceptions import EngineDead, EngineUnavailable

router = APIRouter(tags=["health"])
ALIVE_STATES = frozenset({EngineState.starting, EngineState.running})


class HealthStatus(BaseModel):
    status: Literal["ok"]
    engine: EngineState


class ReadyStatus(BaseModel):
    status: Literal["ready"]
    registry_generation: int
    """The registry generation this replica has read."""
    lagging: list[str]
    """``alias@version``s the registry routes or pins that this replica does not serve (or pin)
    yet, because the engine refused them or a retry is pending. Empty when it has caught up."""


@router.get("/health", response_model=HealthStatus, responses={503: {"model": ErrorResponse}})
async def health(services: ServicesDep) -> HealthStatus:
    """The process serves HTTP and its engine is starting or running."""
    state = services.engine.state
    if state not in ALIVE_STATES:
        raise EngineDead(f"The model engine is {state.value}; the gateway is restarting it.")
    return HealthStatus(status="ok", engine=state)


@router.get("/ready", response_model=ReadyStatus, responses={503: {"model": ErrorResponse}})
async def ready(services: ServicesDep) -> ReadyStatus:
    """The engine is loaded and takes requests."""
    if not services.engine.is_ready:
        raise EngineUnavailable(f"The model engine is not ready ({services.engine.state.value}).")
    router = services.router
    return ReadyStatus(status="ready", registry_generation=router.registry_generation, lagging=router.lagging)

"""FastAPI dependencies: the service container, the caller's identity, database sessions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from adapters.models import NAME_PATTERN
from gateway.auth.models import Principal
from gateway.exceptions import PermissionDenied
from gateway.services import Services
from switchyard.db import DB_INT_MAX, session_scope
from switchyard.traffic.models import REQUEST_ID_PATTERN

bearer = HTTPBearer(auto_error=False, description="An API key, or the admin key")

# Bounded like the columns they select, so an oversized id is a 400, never a database error.
KeyIdPath = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="API key id")]
AdapterNamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="Adapter (alias) name")]
RequestIdPath = Annotated[str, Path(pattern=REQUEST_ID_PATTERN, description="Completion id")]
VersionPath = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="Version number within the adapter")]


# Dependencies without I/O are async on purpose: FastAPI runs sync ones in its thread pool,
# and a thread hop per dependency per request is pure overhead.
async def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_request_id(request: Request) -> str:
    return request.state.request_id


RequestIdDep = Annotated[str, Depends(get_request_id)]


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def get_principal(services: ServicesDep, credentials: BearerDep) -> Principal:
    return await services.auth.authenticate(credentials.credentials if credentials else None)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise PermissionDenied("This route needs the admin key.")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


async def require_metrics_reader(services: ServicesDep, credentials: BearerDep) -> None:
    """The metrics token (what Prometheus is given) or the admin key."""
    secret = credentials.credentials if credentials else None
    if services.auth.is_metrics_token(secret):
        return
    await require_admin(await services.auth.authenticate(secret))


MetricsReaderDep = Annotated[None, Depends(require_metrics_reader)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with session_scope(services.db) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

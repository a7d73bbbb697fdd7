"""FastAPI dependencies: the service container, the caller's identity, database sessions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from gateway.auth.models import Principal
from gateway.exceptions import PermissionDenied
from gateway.services import Services
from switchyard.db import session_scope

bearer = HTTPBearer(auto_error=False, description="An API key, or the admin key")


# Dependencies without I/O are async on purpose: FastAPI runs sync ones in its thread pool,
# and a thread hop per dependency per request is pure overhead.
async def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_request_id(request: Request) -> str:
    return request.state.request_id


RequestIdDep = Annotated[str, Depends(get_request_id)]


async def get_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return await services.auth.authenticate(credentials.credentials if credentials else None)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise PermissionDenied("This route needs the admin key.")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with session_scope(services.db) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

"""FastAPI dependencies: the service container, the caller's identity, database sessions."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from gateway.auth import crud
from gateway.auth.models import ADMIN, Principal
from gateway.exceptions import AuthenticationFailed, PermissionDenied
from gateway.services import Services
from switchyard.db import session_scope

bearer = HTTPBearer(auto_error=False, description="An API key, or the admin key")


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_request_id(request: Request) -> str:
    return request.state.request_id


RequestIdDep = Annotated[str, Depends(get_request_id)]


def get_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it in the Authorization header as 'Bearer YOUR_KEY'."
        )
    secret = credentials.credentials
    if hmac.compare_digest(secret.encode(), services.admin_key.encode()):
        return ADMIN
    with session_scope(services.db) as session:
        row = crud.get_active_key(session=session, secret=secret)
    if row is None:
        raise AuthenticationFailed("Incorrect API key provided, or the key was revoked.")
    return Principal(
        key_id=row.id,
        name=row.name,
        tenant=row.tenant,
        allowed_adapters=tuple(row.allowed_adapters),
        log_content=row.log_content,
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise PermissionDenied("This route needs the admin key.")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with session_scope(services.db) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

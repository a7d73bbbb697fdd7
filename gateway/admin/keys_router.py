from __future__ import annotations

from fastapi import APIRouter, Query

from gateway.auth import crud
from gateway.auth.models import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, ApiKeysPublic
from gateway.deps import AdminDep, KeyIdPath, ServicesDep, SessionDep
from gateway.error_responses import ADMIN_ERROR_RESPONSES
from gateway.exceptions import ResourceNotFound
from switchyard.db import DB_INT_MAX

router = APIRouter(prefix="/admin/keys", tags=["admin"])


@router.post("", response_model=ApiKeyCreated, status_code=201, responses=ADMIN_ERROR_RESPONSES)
def create_key(body: ApiKeyCreate, session: SessionDep, _admin: AdminDep) -> ApiKeyCreated:
    row, secret = crud.create_key(session=session, key_in=body)
    return ApiKeyCreated.model_validate(row, update={"key": secret})


@router.get("", response_model=ApiKeysPublic, responses=ADMIN_ERROR_RESPONSES)
def list_keys(
    session: SessionDep,
    _admin: AdminDep,
    offset: int = Query(default=0, ge=0, le=DB_INT_MAX),
    limit: int = Query(default=100, ge=1, le=1000),
) -> ApiKeysPublic:
    rows, count = crud.list_keys(session=session, offset=offset, limit=limit)
    return ApiKeysPublic(data=[ApiKeyPublic.model_validate(r) for r in rows], count=count)


@router.delete("/{key_id}", response_model=ApiKeyPublic, responses=ADMIN_ERROR_RESPONSES)
def revoke_key(key_id: KeyIdPath, session: SessionDep, services: ServicesDep, _admin: AdminDep) -> ApiKeyPublic:
    row = crud.revoke_key(session=session, key_id=key_id)
    if row is None:
        raise ResourceNotFound(f"No API key with id {key_id}.", param="key_id")
    services.auth.forget(key_id)
    return ApiKeyPublic.model_validate(row)

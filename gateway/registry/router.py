from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import Response
from pydantic import AfterValidator

from adapters.models import AdapterDetail, AdapterEventsPublic, AdaptersPublic, AdapterVersionPublic
from gateway.deps import AdapterNamePath, AdminDep, ServicesDep, VersionPath
from gateway.error_responses import REGISTRY_ERROR_RESPONSES
from gateway.registry.protocol import CanaryRequest, ImportAdapterRequest, PinRequest, PromoteRequest, RejectRequest
from gateway.registry.service import RegistryService
from switchyard.db import DB_INT_MAX, storable_text
from tuner.gate import TaskChecks

router = APIRouter(prefix="/admin/adapters", tags=["adapters"], responses=REGISTRY_ERROR_RESPONSES)


async def get_registry(services: ServicesDep, _admin: AdminDep) -> RegistryService:
    return services.registry


RegistryDep = Annotated[RegistryService, Depends(get_registry)]


@router.get("", response_model=AdaptersPublic)
async def list_adapters(registry: RegistryDep) -> AdaptersPublic:
    return await registry.list()


@router.get("/{name}", response_model=AdapterDetail)
async def show_adapter(name: AdapterNamePath, registry: RegistryDep) -> AdapterDetail:
    return await registry.show(name)


@router.post("/{name}/versions", response_model=AdapterVersionPublic, status_code=201)
async def import_version(
    name: AdapterNamePath, body: ImportAdapterRequest, registry: RegistryDep
) -> AdapterVersionPublic:
    """Register a new candidate version from a folder, an archive path or ``hf://`` hub id."""
    metadata = body.model_dump(exclude={"source"})
    return await registry.import_from(name, body.source, **metadata)


@router.post("/{name}/versions/upload", response_model=AdapterVersionPublic, status_code=201)
async def upload_version(
    name: AdapterNamePath,
    registry: RegistryDep,
    file: Annotated[UploadFile, File(description="A .tar.gz, .tgz, .tar or .zip of a PEFT LoRA folder")],
    description: Annotated[str, Form(max_length=1000), AfterValidator(storable_text)] = "",
    tenant: Annotated[str | None, Form(min_length=1, max_length=128), AfterValidator(storable_text)] = None,
    shared: Annotated[bool, Form()] = False,
) -> AdapterVersionPublic:
    """Register a new candidate version from an uploaded archive (``tenant`` and ``shared`` apply
    to a new adapter)."""
    return await registry.import_upload(
        name, file.filename or "upload", file.file, description=description, tenant=tenant, shared=shared
    )


@router.post("/{name}/promote", response_model=AdapterDetail)
async def promote(name: AdapterNamePath, body: PromoteRequest, registry: RegistryDep) -> AdapterDetail:
    """Load and warm the version, then move the alias to it in one transaction."""
    return await registry.promote(name, body.version)


@router.post("/{name}/rollback", response_model=AdapterDetail)
async def rollback(name: AdapterNamePath, registry: RegistryDep) -> AdapterDetail:
    return await registry.rollback(name)


@router.post("/{name}/canary", response_model=AdapterDetail)
async def canary(name: AdapterNamePath, body: CanaryRequest, registry: RegistryDep) -> AdapterDetail:
    """Route ``weight`` of the alias's traffic to a version (sticky per OpenAI ``user``)."""
    return await registry.canary(name, body.version, body.weight)


@router.post("/{name}/pin", response_model=AdapterDetail)
async def pin(name: AdapterNamePath, body: PinRequest, registry: RegistryDep) -> AdapterDetail:
    """Keep the active version resident in an engine slot."""
    return await registry.pin(name, body.pinned)


@router.put("/{name}/task-checks", response_model=AdapterDetail)
async def set_task_checks(name: AdapterNamePath, body: TaskChecks, registry: RegistryDep) -> AdapterDetail:
    """The checks the evaluation gate runs on greedy answers (exact match, JSON validity, JSON
    schema, regex); a candidate may not pass fewer of them than the champion."""
    return await registry.set_task_checks(name, body.model_dump(mode="json", exclude_none=True))


@router.get("/{name}/events", response_model=AdapterEventsPublic)
async def list_events(
    name: AdapterNamePath,
    registry: RegistryDep,
    offset: Annotated[int, Query(ge=0, le=DB_INT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AdapterEventsPublic:
    """The audit trail: every lifecycle change of the adapter, oldest first."""
    return await registry.events(name, offset=offset, limit=limit)


@router.post("/{name}/versions/{version}/retire", response_model=AdapterVersionPublic)
async def retire(name: AdapterNamePath, version: VersionPath, registry: RegistryDep) -> AdapterVersionPublic:
    return await registry.retire(name, version)


@router.post("/{name}/versions/{version}/reject", response_model=AdapterVersionPublic)
async def reject(
    name: AdapterNamePath, version: VersionPath, registry: RegistryDep, body: RejectRequest | None = None
) -> AdapterVersionPublic:
    """Never route or promote this version again (the evaluation gate makes the same call)."""
    return await registry.reject(name, version, (body or RejectRequest()).reason)


@router.delete("/{name}/versions/{version}", status_code=204, response_class=Response)
async def delete_version(name: AdapterNamePath, version: VersionPath, registry: RegistryDep) -> Response:
    await registry.delete(name, version)
    return Response(status_code=204)

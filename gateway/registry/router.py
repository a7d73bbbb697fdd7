from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import Response

from adapters.models import AdapterDetail, AdaptersPublic, AdapterVersionPublic
from gateway.deps import AdminDep, ServicesDep
from gateway.errors import REGISTRY_ERROR_RESPONSES
from gateway.registry.protocol import CanaryRequest, ImportAdapterRequest, PinRequest, PromoteRequest
from gateway.registry.service import RegistryService

router = APIRouter(prefix="/admin/adapters", tags=["adapters"], responses=REGISTRY_ERROR_RESPONSES)


async def get_registry(services: ServicesDep, _admin: AdminDep) -> RegistryService:
    return services.registry


RegistryDep = Annotated[RegistryService, Depends(get_registry)]


@router.get("", response_model=AdaptersPublic)
async def list_adapters(registry: RegistryDep) -> AdaptersPublic:
    return await registry.list()


@router.get("/{name}", response_model=AdapterDetail)
async def show_adapter(name: str, registry: RegistryDep) -> AdapterDetail:
    return await registry.show(name)


@router.post("/{name}/versions", response_model=AdapterVersionPublic, status_code=201)
async def import_version(name: str, body: ImportAdapterRequest, registry: RegistryDep) -> AdapterVersionPublic:
    """Register a new candidate version from a folder, an archive path or ``hf://`` hub id."""
    metadata = body.model_dump(exclude={"source"})
    return await registry.import_from(name, body.source, **metadata)


@router.post("/{name}/versions/upload", response_model=AdapterVersionPublic, status_code=201)
async def upload_version(
    name: str,
    registry: RegistryDep,
    file: Annotated[UploadFile, File(description="A .tar.gz, .tgz, .tar or .zip of a PEFT LoRA folder")],
    description: Annotated[str, Form(max_length=1000)] = "",
) -> AdapterVersionPublic:
    """Register a new candidate version from an uploaded archive."""
    return await registry.import_upload(name, file.filename or "upload", file.file, description=description)


@router.post("/{name}/promote", response_model=AdapterDetail)
async def promote(name: str, body: PromoteRequest, registry: RegistryDep) -> AdapterDetail:
    """Load and warm the version, then move the alias to it in one transaction."""
    return await registry.promote(name, body.version)


@router.post("/{name}/rollback", response_model=AdapterDetail)
async def rollback(name: str, registry: RegistryDep) -> AdapterDetail:
    return await registry.rollback(name)


@router.post("/{name}/canary", response_model=AdapterDetail)
async def canary(name: str, body: CanaryRequest, registry: RegistryDep) -> AdapterDetail:
    """Route ``weight`` of the alias's traffic to a version (sticky per OpenAI ``user``)."""
    return await registry.canary(name, body.version, body.weight)


@router.post("/{name}/pin", response_model=AdapterDetail)
async def pin(name: str, body: PinRequest, registry: RegistryDep) -> AdapterDetail:
    """Keep the active version resident in an engine slot."""
    return await registry.pin(name, body.pinned)


@router.post("/{name}/versions/{version}/retire", response_model=AdapterVersionPublic)
async def retire(name: str, version: int, registry: RegistryDep) -> AdapterVersionPublic:
    return await registry.retire(name, version)


@router.delete("/{name}/versions/{version}", status_code=204, response_class=Response)
async def delete_version(name: str, version: int, registry: RegistryDep) -> Response:
    await registry.delete(name, version)
    return Response(status_code=204)

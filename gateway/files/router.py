from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import StreamingResponse

from gateway.deps import PrincipalDep, ServicesDep
from gateway.error_responses import ERROR_RESPONSES, ErrorResponse
from gateway.files.protocol import FileDeleted, FileList, FileObject
from tuner.files import FILE_ID_PATTERN, FilePurpose
from tuner.files.crud import MAX_PAGE, Order

FILES_ERROR_RESPONSES: dict[int | str, dict] = {
    **ERROR_RESPONSES,
    403: {"model": ErrorResponse, "description": "The key lacks the fine_tune scope"},
}
CONTENT_RESPONSE: dict[int | str, dict] = {
    200: {
        "description": "The file's bytes, as uploaded",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}

router = APIRouter(prefix="/v1/files", tags=["files"], responses=FILES_ERROR_RESPONSES)

# Bounded like the column it selects, so a hostile id is a 400, never a database error.
FileIdPath = Annotated[str, Path(pattern=FILE_ID_PATTERN, description="File id")]


@router.post("", response_model=FileObject)
async def upload_file(
    principal: PrincipalDep,
    services: ServicesDep,
    file: Annotated[UploadFile, File(description="JSONL: one chat conversation ({messages: [...]}) per line")],
    purpose: Annotated[FilePurpose, Form(description="Only fine-tune: Switchyard stores training files")],
) -> FileObject:
    """Upload a training file; it is validated line by line before it is stored."""
    return await services.files.upload(file.file, filename=file.filename, purpose=purpose, principal=principal)


@router.get("", response_model=FileList)
async def list_files(
    principal: PrincipalDep,
    services: ServicesDep,
    purpose: Annotated[str | None, Query(pattern=r"^[a-z_-]{1,32}$")] = None,
    after: Annotated[str | None, Query(pattern=FILE_ID_PATTERN, description="A file id: the page after it")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
    order: Order = "desc",
) -> FileList:
    """The caller's files (the admin: every tenant's), by upload time."""
    return await services.files.list(principal=principal, purpose=purpose, after=after, limit=limit, order=order)


@router.get("/{file_id}", response_model=FileObject)
async def retrieve_file(file_id: FileIdPath, principal: PrincipalDep, services: ServicesDep) -> FileObject:
    return await services.files.retrieve(file_id, principal=principal)


@router.delete("/{file_id}", response_model=FileDeleted)
async def delete_file(file_id: FileIdPath, principal: PrincipalDep, services: ServicesDep) -> FileDeleted:
    return await services.files.delete(file_id, principal=principal)


@router.get("/{file_id}/content", response_class=StreamingResponse, responses=CONTENT_RESPONSE)
async def download_file(file_id: FileIdPath, principal: PrincipalDep, services: ServicesDep) -> StreamingResponse:
    """The stored bytes, exactly as uploaded."""
    content = await services.files.content(file_id, principal=principal)
    return StreamingResponse(
        content.chunks(), media_type="application/octet-stream", headers={"Content-Length": str(content.size)}
    )

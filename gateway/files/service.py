"""Training files as ``/v1/files`` serves them: who may use them, and whose they are.

A key needs the ``fine_tune`` scope; it sees only its tenant's files (keys without a tenant share
a group of their own). The admin sees every file, and what it uploads belongs to no tenant.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.engine import Engine
from sqlmodel import Session

from gateway.auth.models import Principal
from gateway.exceptions import PermissionDenied
from gateway.files.protocol import FileDeleted, FileList, FileObject
from switchyard.db import run_in_session
from tuner.exceptions import TuningResourceNotFound
from tuner.files import (
    FileLimits,
    FilePurpose,
    TuningFileCreate,
    content_path,
    create_file,
    delete_file,
    get_file,
    list_files,
)
from tuner.files.crud import Order
from tuner.jobs.crud import ANY_TENANT, TenantScope

logger = logging.getLogger(__name__)
CHUNK_BYTES = 1 << 20


def tuning_scope(principal: Principal) -> TenantScope:
    """Whose training files and jobs ``principal`` sees; :class:`PermissionDenied` without the
    ``fine_tune`` scope."""
    if not principal.may_fine_tune:
        raise PermissionDenied("This API key may not fine-tune: it needs the 'fine_tune' scope.")
    return ANY_TENANT if principal.is_admin else principal.tenant


@dataclass
class FileContent:
    """An open stored file: it stays readable even if the file is deleted while it is sent."""

    size: int
    stream: BinaryIO

    def chunks(self) -> Iterator[bytes]:
        with self.stream:
            while block := self.stream.read(CHUNK_BYTES):
                yield block


class FilesService:
    def __init__(self, *, db: Engine, files_dir: Path, limits: FileLimits) -> None:
        self._db = db
        self._files_dir = files_dir
        self._limits = limits

    async def upload(
        self, upload: BinaryIO, *, filename: str | None, purpose: FilePurpose, principal: Principal
    ) -> FileObject:
        """Validate and store an uploaded training file."""
        tuning_scope(principal)
        file_in = TuningFileCreate(filename=filename, purpose=purpose)  # type: ignore[arg-type]
        row = await run_in_session(
            self._db,
            lambda s: create_file(
                session=s,
                files_dir=self._files_dir,
                upload=upload,
                file_in=file_in,
                limits=self._limits,
                tenant=None if principal.is_admin else principal.tenant,
                key_id=principal.key_id,
            ),
        )
        return FileObject.of(row)

    async def list(
        self, *, principal: Principal, purpose: str | None, after: str | None, limit: int, order: Order
    ) -> FileList:
        scope = tuning_scope(principal)
        rows, has_more = await run_in_session(
            self._db,
            lambda s: list_files(session=s, scope=scope, purpose=purpose, after=after, limit=limit, order=order),
        )
        data = [FileObject.of(row) for row in rows]
        return FileList(
            data=data,
            has_more=has_more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )

    async def retrieve(self, file_id: str, *, principal: Principal) -> FileObject:
        scope = tuning_scope(principal)
        return await run_in_session(
            self._db, lambda s: FileObject.of(get_file(session=s, file_id=file_id, scope=scope))
        )

    async def content(self, file_id: str, *, principal: Principal) -> FileContent:
        scope = tuning_scope(principal)

        def work(session: Session) -> FileContent:
            row = get_file(session=session, file_id=file_id, scope=scope)
            try:
                stream = content_path(files_dir=self._files_dir, row=row).open("rb")
            except FileNotFoundError:
                logger.error("the content of %s is missing from %s", file_id, self._files_dir)
                raise TuningResourceNotFound(
                    f"The content of file {file_id} is no longer stored.", param="file_id"
                ) from None
            return FileContent(size=os.fstat(stream.fileno()).st_size, stream=stream)

        return await run_in_session(self._db, work)

    async def delete(self, file_id: str, *, principal: Principal) -> FileDeleted:
        scope = tuning_scope(principal)
        await run_in_session(
            self._db, lambda s: delete_file(session=s, files_dir=self._files_dir, file_id=file_id, scope=scope)
        )
        return FileDeleted(id=file_id)

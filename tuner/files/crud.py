"""Training files: store an upload once it passed validation, and the tenant-scoped reads.

An upload is streamed into a temporary file inside the files folder (counted against the size
limit as it arrives), validated and hashed there, then renamed into place and recorded. Whatever
fails on the way, neither a row nor a file is left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Literal

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, select

from tuner.exceptions import InvalidTrainingFile, TuningResourceNotFound
from tuner.files.models import FILE_ID_PATTERN, TuningFile, TuningFileCreate
from tuner.files.validation import FileLimits, check_file, read_examples
from tuner.jobs.crud import AnyTenant, TenantScope, new_public_id

CHUNK_BYTES = 1 << 20
MAX_PAGE = 10_000
PARTIAL_PREFIX = ".upload-"
"""Uploads in progress (a crash may leave one; nothing reads them)."""
Order = Literal["asc", "desc"]


def _visible(scope: TenantScope) -> list[ColumnElement[bool]]:
    if isinstance(scope, AnyTenant):
        return []
    # None is a tenant of its own (keys without one), never "any tenant".
    return [TuningFile.tenant == scope if scope is not None else col(TuningFile.tenant).is_(None)]


def _copy(upload: BinaryIO, out: BinaryIO, max_bytes: int) -> tuple[int, str]:
    """Copy ``upload`` to ``out``; its size and sha256, or :class:`InvalidTrainingFile` as soon as
    it passes ``max_bytes``."""
    digest = hashlib.sha256()
    size = 0
    while block := upload.read(CHUNK_BYTES):
        size += len(block)
        if size > max_bytes:
            raise InvalidTrainingFile(f"The file is over the limit of {max_bytes} bytes.", param="file")
        digest.update(block)
        out.write(block)
    return size, digest.hexdigest()


def create_file(
    *,
    session: Session,
    files_dir: Path,
    upload: BinaryIO,
    file_in: TuningFileCreate,
    limits: FileLimits,
    tenant: str | None,
    key_id: int | None = None,
) -> TuningFile:
    """Validate ``upload`` and store it for ``tenant``; :class:`InvalidTrainingFile` names what is
    wrong with it."""
    files_dir.mkdir(parents=True, exist_ok=True)
    public_id = new_public_id("file")
    name = f"{public_id}.jsonl"
    final = files_dir / name
    fd, partial = tempfile.mkstemp(dir=files_dir, prefix=PARTIAL_PREFIX, suffix=".part")
    placed = False
    try:
        with os.fdopen(fd, "w+b") as out:
            size, sha256 = _copy(upload, out, limits.max_bytes)
            out.seek(0)
            examples = check_file(out, limits=limits)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)
        placed = True
        row = TuningFile.model_validate(
            file_in,
            update={
                "public_id": public_id,
                "tenant": tenant,
                "key_id": key_id,
                "bytes": size,
                "examples": examples,
                "sha256": sha256,
                "path": name,
            },
        )
        session.add(row)
        session.commit()
    except BaseException:
        session.rollback()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(final if placed else partial)
        raise
    session.refresh(row)
    return row


def get_file(*, session: Session, file_id: str, scope: TenantScope) -> TuningFile:
    """The file, if ``scope`` may see it; another tenant's file is :class:`TuningResourceNotFound`."""
    row = None
    if re.fullmatch(FILE_ID_PATTERN, file_id):  # anything else cannot be an id (nor reach the database)
        row = session.exec(select(TuningFile).where(TuningFile.public_id == file_id, *_visible(scope))).first()
    if row is None:
        raise TuningResourceNotFound(f"No such File object: {file_id}", param="file_id")
    return row


def list_files(
    *,
    session: Session,
    scope: TenantScope,
    purpose: str | None = None,
    after: str | None = None,
    limit: int = MAX_PAGE,
    order: Order = "desc",
) -> tuple[list[TuningFile], bool]:
    """A page of files in upload order (``desc``: newest first) after the file ``after``, and
    whether more follow. An unknown cursor gives an empty page, as for jobs."""
    where = _visible(scope)
    if purpose is not None:
        where.append(TuningFile.purpose == purpose)
    key = col(TuningFile.id)
    if after is not None:
        if not re.fullmatch(FILE_ID_PATTERN, after):
            return [], False
        anchor = session.exec(select(TuningFile.id).where(TuningFile.public_id == after, *where)).first()
        if anchor is None:
            return [], False
        where.append(key > anchor if order == "asc" else key < anchor)
    statement = select(TuningFile).where(*where).order_by(key if order == "asc" else key.desc())
    rows = list(session.exec(statement.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def content_path(*, files_dir: Path, row: TuningFile) -> Path:
    """Where ``row``'s bytes are stored."""
    return files_dir / row.path


def delete_file(*, session: Session, files_dir: Path, file_id: str, scope: TenantScope) -> None:
    """Delete the row, then the bytes (a crash between leaves an unreferenced file, never a row
    whose content is gone)."""
    row = get_file(session=session, file_id=file_id, scope=scope)
    path = content_path(files_dir=files_dir, row=row)
    session.delete(row)
    session.commit()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def read_training_rows(*, session: Session, files_dir: Path, file_id: str, scope: TenantScope) -> list[dict[str, Any]]:
    """The file's examples in TRL's conversational prompt-completion format:
    ``{"prompt": messages[:-1], "completion": [messages[-1]]}``, each message ``{"role", "content"}``.

    The stored bytes are checked again (digest and format) against what was accepted on upload;
    a file changed or lost since is :class:`InvalidTrainingFile`."""
    row = get_file(session=session, file_id=file_id, scope=scope)
    broken = f"The stored content of file {file_id} changed or is missing since it was uploaded; upload it again."
    limits = FileLimits(max_bytes=row.bytes, max_lines=row.examples)
    try:
        with content_path(files_dir=files_dir, row=row).open("rb") as stream:
            digest = hashlib.sha256()
            while block := stream.read(CHUNK_BYTES):
                digest.update(block)
            if digest.hexdigest() != row.sha256:
                raise InvalidTrainingFile(broken, param="file")
            stream.seek(0)
            conversations = read_examples(stream, limits=limits)
    except OSError:
        raise InvalidTrainingFile(broken, param="file") from None
    return [{"prompt": messages[:-1], "completion": [messages[-1]]} for messages in conversations]

"""Uploaded training files: one row per file, rendered as OpenAI's file object.

The file's bytes live in the files folder under ``path`` (relative to that folder, so a volume
mounted elsewhere on another replica still finds them); the row holds what was checked on upload.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Literal, Self

from pydantic import field_validator
from sqlmodel import Field, SQLModel

from switchyard.db import utcnow

FILE_ID_PATTERN = r"^file-[A-Za-z0-9]{1,40}$"
MAX_FILENAME_CHARS = 255
DEFAULT_FILENAME = "upload.jsonl"


class FilePurpose(StrEnum):
    """What a file is for. OpenAI knows more (``fine-tune-results``, ``batch``, …); Switchyard
    stores training files only."""

    fine_tune = "fine-tune"


def clean_filename(value: str | None) -> str:
    """The basename of what the client sent, without NUL or other control characters, bounded:
    a label to show, never a path the server opens."""
    name = "".join(c for c in (value or "") if unicodedata.category(c) not in ("Cc", "Cs"))
    name = PurePosixPath(name.replace("\\", "/")).name.strip()
    return name[:MAX_FILENAME_CHARS] or DEFAULT_FILENAME


class TuningFileBase(SQLModel):
    filename: str = Field(min_length=1, max_length=MAX_FILENAME_CHARS)
    """The uploaded file's name (a basename), as the client labelled it."""
    purpose: str = Field(max_length=32, index=True)
    """A :class:`FilePurpose` value (a plain column, so a new purpose needs no migration)."""


class TuningFileCreate(TuningFileBase):
    @field_validator("filename", mode="before")
    @classmethod
    def _basename(cls, value: str | None) -> str:
        return clean_filename(value)

    @field_validator("purpose")
    @classmethod
    def _known_purpose(cls, value: str) -> str:
        return FilePurpose(value).value


class TuningFile(TuningFileBase, table=True):
    __tablename__ = "tuning_file"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=64, unique=True, index=True)
    """``file-…``, the id the API shows."""
    tenant: str | None = Field(default=None, max_length=128, index=True)
    """Whose file: only this tenant's keys (and the admin) see it. None: keys without a tenant,
    and the admin's own uploads."""
    key_id: int | None = None
    """The API key that uploaded it (None: the admin)."""
    bytes: int = Field(ge=0)
    examples: int = Field(ge=0)
    """Training examples (non-empty lines) in the file."""
    sha256: str = Field(max_length=64)
    """Digest of the stored bytes, checked again before the file is trained on."""
    path: str = Field(max_length=1024)
    """Where the bytes are, relative to the files folder."""
    created_at: datetime = Field(default_factory=utcnow, index=True)


def unix_seconds(moment: datetime) -> int:
    # SQLite hands datetimes back without their zone; they were stored in UTC.
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


class TuningFilePublic(SQLModel):
    """OpenAI's file object."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    """Unix seconds."""
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    """Deprecated by OpenAI; a stored file was validated on upload, so it is always processed."""
    status_details: None = None
    expires_at: int | None = None
    """Files do not expire."""

    @classmethod
    def of(cls, row: TuningFile) -> Self:
        return cls(
            id=row.public_id,
            bytes=row.bytes,
            created_at=unix_seconds(row.created_at),
            filename=row.filename,
            purpose=row.purpose,
        )

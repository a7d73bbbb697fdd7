"""Registry tables: an adapter (the alias applications call) and its immutable versions."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


def utcnow() -> datetime:
    return datetime.now(UTC)


class VersionStatus(StrEnum):
    candidate = "candidate"
    active = "active"
    canary = "canary"
    retired = "retired"
    rejected = "rejected"


class AdapterBase(SQLModel):
    name: str = Field(index=True, unique=True, max_length=64, regex=NAME_PATTERN)
    description: str = Field(default="", max_length=1000)
    tenant: str | None = Field(default=None, max_length=128)


class Adapter(AdapterBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # No foreign key: adapter and version reference each other, and the version row is
    # written after the adapter row inside the same transaction.
    active_version_id: int | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)


class AdapterVersionBase(SQLModel):
    version: int = Field(ge=1)
    status: VersionStatus = Field(default=VersionStatus.candidate)
    artifact_uri: str
    sha256: str = Field(max_length=64)
    rank: int = Field(ge=1)
    alpha: float
    target_modules: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    base_fingerprint: str = Field(max_length=64)
    size_bytes: int = Field(ge=0)


class AdapterVersion(AdapterVersionBase, table=True):
    __tablename__ = "adapter_version"
    __table_args__ = (UniqueConstraint("adapter_id", "version"),)

    # This id is the engine's ``lora_int_id``: unique across all adapters and never reused.
    id: int | None = Field(default=None, primary_key=True)
    adapter_id: int = Field(foreign_key="adapter.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    promoted_at: datetime | None = None


class AdapterVersionPublic(AdapterVersionBase):
    id: int
    created_at: datetime
    promoted_at: datetime | None


class AdapterPublic(AdapterBase):
    id: int
    active_version: int | None
    created_at: datetime

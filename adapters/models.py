"""Registry tables: an adapter (the alias applications call), its immutable versions, the
alias's routing (active version, optional weighted canary), an audit trail of lifecycle
events, and a generation counter that tells other processes the registry changed."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from switchyard.db import utcnow

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class VersionStatus(StrEnum):
    candidate = "candidate"
    active = "active"
    canary = "canary"
    retired = "retired"
    rejected = "rejected"


class AdapterBase(SQLModel):
    name: str = Field(index=True, unique=True, max_length=64, regex=NAME_PATTERN)
    description: str = Field(default="", max_length=1000)
    tenant: str | None = Field(default=None, min_length=1, max_length=128)
    """Owner tenant: only its keys (and admin) see and call the adapter, unless it is shared."""
    shared: bool = False
    """Visible to every tenant's keys (that allow it), e.g. a general-purpose adapter."""
    task_checks: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Evaluation checks for this adapter's task (exact match, JSON schema, regex, ...)."""
    pinned: bool = False
    """Keep the active version resident in an engine slot (for hot adapters)."""


class Adapter(AdapterBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # Plain integers rather than foreign keys: adapter and version rows reference each other.
    active_version_id: int | None = None
    previous_version_id: int | None = None
    """The version active before the current one: where a rollback goes."""
    canary_version_id: int | None = None
    canary_weight: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of the alias's traffic routed to the canary version."""
    next_version: int = Field(default=1, ge=1)
    """The number the next registered version gets. It only goes up (in the transaction that
    inserts the version, under this row's lock), so a deleted version's number is never reused
    and ``name@N`` always names the same weights."""
    created_at: datetime = Field(default_factory=utcnow)


class AdapterVersionBase(SQLModel):
    version: int = Field(ge=1)
    status: VersionStatus = Field(default=VersionStatus.candidate)
    artifact_uri: str
    sha256: str = Field(max_length=64)
    """The artifact digest: sha256 over the two contract files' digests. The store checks it
    whenever a version is fetched for the engine."""
    config_sha256: str = Field(max_length=64)
    """sha256 of ``adapter_config.json``."""
    weights_sha256: str = Field(max_length=64)
    """sha256 of ``adapter_model.safetensors``."""
    rank: int = Field(ge=1)
    alpha: float
    target_modules: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    base_fingerprint: str = Field(max_length=64)
    size_bytes: int = Field(ge=0)
    parent_version: int | None = None
    """Lineage: the version this one was trained from."""
    dataset_snapshot_id: str | None = Field(default=None, max_length=128)
    """Lineage: the dataset snapshot it was trained on."""
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    source: str | None = Field(default=None, max_length=1024)
    """Where the folder was imported from (path, archive name or hub id)."""


class AdapterVersion(AdapterVersionBase, table=True):
    __tablename__ = "adapter_version"
    # AUTOINCREMENT: SQLite would otherwise reuse the id of a deleted highest row, and this
    # id is the engine's lora_int_id, which must never name two different weights.
    __table_args__ = (UniqueConstraint("adapter_id", "version"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    adapter_id: int = Field(foreign_key="adapter.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    promoted_at: datetime | None = None


class AdapterEvent(SQLModel, table=True):
    """Audit trail: every lifecycle change, who asked for it is the caller's business."""

    __tablename__ = "adapter_event"

    id: int | None = Field(default=None, primary_key=True)
    adapter_id: int = Field(foreign_key="adapter.id", index=True)
    action: str = Field(max_length=32)
    version: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class RegistryState(SQLModel, table=True):
    """One row; ``generation`` goes up in the same transaction as every routing change."""

    __tablename__ = "registry_state"

    id: int = Field(default=1, primary_key=True)
    generation: int = 0


class AdapterVersionPublic(AdapterVersionBase):
    id: int
    created_at: datetime
    promoted_at: datetime | None


class AdapterPublic(AdapterBase):
    id: int
    active_version: int | None
    canary_version: int | None
    canary_weight: float
    created_at: datetime


class AdapterDetail(AdapterPublic):
    versions: list[AdapterVersionPublic]


class AdaptersPublic(SQLModel):
    data: list[AdapterPublic]
    count: int


class AdapterEventPublic(SQLModel):
    id: int
    action: str
    version: int | None
    detail: dict[str, Any]
    created_at: datetime


class AdapterEventsPublic(SQLModel):
    data: list[AdapterEventPublic]
    count: int

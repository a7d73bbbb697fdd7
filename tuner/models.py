"""The tuner's tables: one manifest row per dataset snapshot, saying how it was curated."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from switchyard.db import utcnow


class CurationManifestBase(SQLModel):
    snapshot_id: str = Field(max_length=128, unique=True, index=True)
    """The snapshot's content hash (``<adapter>-<digest>``), as a version's lineage records it."""
    adapter: str = Field(max_length=64, index=True)
    tenant: str | None = Field(default=None, max_length=128, index=True)
    """Whose traffic it holds (None: keys without a tenant). A snapshot never mixes tenants."""
    path: str = Field(max_length=4096)
    """The snapshot folder; its ``data`` subfolder is the ``datasets.DatasetDict`` to train on."""
    window_start: datetime | None = None
    """Oldest request time considered (None: from the first logged request)."""
    window_end: datetime
    """Requests logged at or after this time were not considered."""
    considered: int = Field(ge=0)
    """Logged chat requests of the adapter and tenant inside the window."""
    train_count: int = Field(ge=0)
    holdout_count: int = Field(ge=0)
    dropped: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Requests left out, per reason (``no_content``, ``negative_feedback``, ``duplicate``, ``too_long``, …)."""
    pii_counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Redactions per entity type (``EMAIL_ADDRESS``, ``CREDIT_CARD``, …) over the kept examples."""
    policy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """The filters and settings this snapshot was curated with, so it can be reproduced."""
    source_request_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """The logged requests whose (redacted) conversations became the snapshot's rows."""


class CurationManifestCreate(CurationManifestBase):
    pass


class CurationManifest(CurationManifestBase, table=True):
    __tablename__ = "curation_manifest"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class CurationManifestPublic(CurationManifestBase):
    id: int
    created_at: datetime


class CurationManifestsPublic(SQLModel):
    data: list[CurationManifestPublic]
    count: int

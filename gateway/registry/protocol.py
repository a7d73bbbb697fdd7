from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from switchyard.db import DB_INT_MAX


class ImportAdapterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=1024)
    """A folder or archive path on the gateway's machine, or ``hf://org/name[@revision]``."""
    description: str = Field(default="", max_length=1000)
    tenant: str | None = Field(default=None, min_length=1, max_length=128)
    """Owner tenant of a new adapter (ignored for an existing one)."""
    shared: bool = False
    """A new adapter visible to every tenant's keys that allow it."""
    parent_version: int | None = Field(default=None, ge=1, le=DB_INT_MAX)
    dataset_snapshot_id: str | None = Field(default=None, max_length=128)
    metrics: dict[str, Any] = Field(default_factory=dict)


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=DB_INT_MAX)


class CanaryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=DB_INT_MAX)
    weight: float = Field(ge=0.0, le=1.0)
    """Share of the alias's traffic for ``version``; 0 ends the canary."""


class PinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pinned: bool


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="rejected by an operator", min_length=1, max_length=1000)
    """Why, for the audit trail (the evaluation gate writes its numbers here)."""

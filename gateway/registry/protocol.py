from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from switchyard.db import DB_INT_MAX, storable_text

MAX_METRICS_CHARS = 64 * 1024
"""A version's metrics are a summary stored with every row read of the registry, not a log."""


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

    @field_validator("description", "tenant", "dataset_snapshot_id")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        return storable_text(value)

    @field_validator("metrics")
    @classmethod
    def _finite_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:  # PostgreSQL's json refuses NaN and Infinity, and so does strict JSON
            encoded = storable_text(json.dumps(value, allow_nan=False))
        except ValueError:
            raise ValueError("metrics must be finite JSON without NUL characters") from None
        if len(encoded or "") > MAX_METRICS_CHARS:
            raise ValueError(f"metrics must encode to at most {MAX_METRICS_CHARS} characters")
        return value


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

    @field_validator("reason")
    @classmethod
    def _storable(cls, value: str) -> str:
        return storable_text(value)  # type: ignore[return-value]

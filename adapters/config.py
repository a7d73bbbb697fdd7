"""Adapter registry settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AdapterSettings(BaseSettings):
    """Read from ``SWITCHYARD_*`` environment variables (or a ``.env`` file)."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", env_file=".env", extra="ignore")

    max_adapter_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    """Largest adapter folder (or unpacked archive) accepted, in bytes."""

    artifact_store: str | None = None
    """Where versions are stored: a folder, or an fsspec URL such as ``s3://bucket/adapters``.
    Default: ``<data_dir>/adapters``. Replicas that scale out must share it."""

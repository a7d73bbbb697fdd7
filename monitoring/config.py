"""Monitoring settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MonitoringSettings(BaseSettings):
    """Read from ``SWITCHYARD_*`` environment variables (or a ``.env`` file)."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", env_file=".env", extra="ignore")

    spool_alert_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Traffic-log backlog (bytes not yet in the database) above which ``switchyard_log_spool_alert`` is 1."""

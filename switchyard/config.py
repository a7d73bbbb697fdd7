"""Settings shared by every package: where data lives, which database, which base model."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that people paste from examples; refused as secrets outside development.
PLACEHOLDER_SECRETS = frozenset({"changethis", "change-me", "changeme", "secret", "admin", "password"})

DEMO_MODEL_DIRNAME = "demo-base"


class Settings(BaseSettings):
    """Core settings, read from ``SWITCHYARD_*`` environment variables (or a ``.env`` file)."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", env_file=".env", extra="ignore")

    environment: Literal["development", "staging", "production"] = "development"
    """Deployment stage. Outside ``development`` an explicit, non-placeholder admin key is required."""

    data_dir: Path = Path("data")
    """Folder for the SQLite database, the adapter store, the traffic-log spool and the demo model."""

    database_url: str | None = None
    """SQLAlchemy URL. Default: ``sqlite:///<data_dir>/switchyard.db`` (WAL mode)."""

    base_model: str | None = None
    """Local path or hub id of the base model. Default: the tiny demo model, built on first start."""

    admin_key: SecretStr | None = None
    """Admin bearer key. In development, when unset, one is generated into ``<data_dir>/admin.key``."""

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "development":
            return self
        key = self.admin_key.get_secret_value() if self.admin_key else ""
        if not key or key.lower() in PLACEHOLDER_SECRETS or len(key) < 16:
            raise ValueError(
                f"SWITCHYARD_ADMIN_KEY must be set to a strong secret (16+ characters) "
                f"when SWITCHYARD_ENVIRONMENT={self.environment}"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'switchyard.db'}"

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin.key"

    @property
    def demo_model_dir(self) -> Path:
        return self.data_dir / "models" / DEMO_MODEL_DIRNAME

    @property
    def resolved_base_model(self) -> str:
        return self.base_model or str(self.demo_model_dir.resolve())

    @property
    def uses_demo_model(self) -> bool:
        return self.base_model is None

    def resolve_admin_key(self) -> str:
        """The admin key: configured, or (development only) read from or generated into the key file."""
        if self.admin_key is not None:
            return self.admin_key.get_secret_value()
        path = self.admin_key_file
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = "sy-admin-" + secrets.token_urlsafe(32)
        path.touch(mode=0o600)
        path.write_text(key + "\n")
        return key

"""Settings refuse placeholder secrets outside development and generate a key inside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config import GatewaySettings
from switchyard.config import Settings


@pytest.mark.parametrize("key", [None, "changethis", "admin", "short"])
def test_production_refuses_weak_admin_keys(key: str | None) -> None:
    with pytest.raises(ValidationError, match="SWITCHYARD_ADMIN_KEY"):
        Settings(_env_file=None, environment="production", admin_key=key)


def test_production_accepts_a_strong_key() -> None:
    settings = Settings(_env_file=None, environment="production", admin_key="x" * 32)
    assert settings.resolve_admin_key() == "x" * 32


def test_development_generates_and_keeps_a_key(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    key = settings.resolve_admin_key()
    assert key.startswith("sy-admin-") and len(key) > 40
    assert settings.resolve_admin_key() == key
    assert (tmp_path / "admin.key").stat().st_mode & 0o077 == 0
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'switchyard.db'}"


@pytest.mark.parametrize(("field", "value"), [("max_lora_rank", 12), ("max_loras", 0), ("port", 70000)])
def test_gateway_limits_are_bounded(field: str, value: int) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(_env_file=None, **{field: value})

"""Settings refuse placeholder secrets outside development and generate a key inside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from switchyard.config import Settings

STRONG = "x" * 32


@pytest.mark.parametrize("key", [None, "changethis", "admin", "short"])
def test_production_refuses_weak_admin_keys(key: str | None) -> None:
    with pytest.raises(ValidationError, match="SWITCHYARD_ADMIN_KEY"):
        Settings(_env_file=None, environment="production", admin_key=key, monitoring={"metrics_token": STRONG})


@pytest.mark.parametrize("token", [None, "changeme", "short"])
def test_production_refuses_weak_metrics_tokens(token: str | None) -> None:
    with pytest.raises(ValidationError, match="SWITCHYARD_MONITORING__METRICS_TOKEN"):
        Settings(_env_file=None, environment="production", admin_key=STRONG, monitoring={"metrics_token": token})


def test_production_accepts_strong_secrets() -> None:
    settings = Settings(
        _env_file=None, environment="production", admin_key=STRONG, monitoring={"metrics_token": "y" * 32}
    )
    assert settings.resolve_admin_key() == STRONG
    assert settings.resolve_metrics_token() == "y" * 32


def test_development_generates_and_keeps_a_key(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    key = settings.resolve_admin_key()
    assert key.startswith("sy-admin-") and len(key) > 40
    assert settings.resolve_admin_key() == key
    assert (tmp_path / "admin.key").stat().st_mode & 0o077 == 0
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'switchyard.db'}"


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [("engine", "max_lora_rank", 12), ("engine", "max_loras", 0), ("server", "port", 70000), ("engine", "seed", -1)],
)
def test_limits_are_bounded(section: str, field: str, value: int) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **{section: {field: value}})


def test_sections_read_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_ENGINE__MAX_LORAS", "7")
    monkeypatch.setenv("SWITCHYARD_TRAFFIC_LOG__BATCH_SIZE", "9")
    settings = Settings(_env_file=None)
    assert settings.engine.max_loras == 7 and settings.traffic_log.batch_size == 9


def test_a_misspelt_section_field_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_ENGINE__MAX_LORA", "7")
    with pytest.raises(ValidationError, match="max_lora"):
        Settings(_env_file=None)

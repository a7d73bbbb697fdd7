"""Drift settings: bounded, read from the environment, and what the monitor is built from."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from monitoring.drift.monitor import build_monitor
from switchyard.config import Settings


def test_drift_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SWITCHYARD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SWITCHYARD_MONITORING__DRIFT__WINDOW_ROWS", "500")
    monkeypatch.setenv("SWITCHYARD_MONITORING__DRIFT__WEBHOOK_URL", "https://hooks.example/T000/secret")
    settings = Settings(_env_file=None)
    drift = settings.monitoring.drift
    assert drift.window_rows == 500 and drift.false_alarm_rate == 0.01 and drift.interval_s == 3600
    assert "secret" not in repr(drift)  # the webhook's token stays out of logs
    assert settings.drift_workspace_dir == tmp_path / "evidently"
    assert settings.drift_reports_dir == tmp_path / "drift-reports"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("window_rows", 0),
        ("min_rows", 1),
        ("sample_size", 10),
        ("false_alarm_rate", 0.0),
        ("false_alarm_rate", 0.9),
        ("interval_s", 5),
        ("webhook_url", "ftp://hooks.example/x"),
        ("webhook_attempts", 0),
    ],
)
def test_drift_settings_are_bounded(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(_env_file=None, monitoring={"drift": {field: value}})


def test_the_monitor_is_built_from_the_settings(sqlite_db: Engine, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path, monitoring={"drift": {"webhook_url": "http://127.0.0.1:9/hook"}}
    )
    monitor = build_monitor(sqlite_db, settings)
    try:
        assert monitor.workspace.workspace_dir == tmp_path / "evidently"
        assert monitor.workspace.reports_dir == tmp_path / "drift-reports"
        assert monitor.settings is settings.monitoring.drift
    finally:
        monitor.close()

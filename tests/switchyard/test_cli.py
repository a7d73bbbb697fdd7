"""The CLI against a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.auth import crud
from switchyard.cli import app
from switchyard.db import make_engine, session_scope


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SWITCHYARD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SWITCHYARD_DATABASE_URL", raising=False)
    return CliRunner()


def test_keys_create_list_revoke(runner: CliRunner, tmp_path: Path) -> None:
    created = runner.invoke(app, ["keys", "create", "--name", "svc", "--tenant", "acme", "--allow", "a, b"])
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    assert secret.startswith("sk-sy-")
    db = make_engine(f"sqlite:///{tmp_path / 'switchyard.db'}")
    with session_scope(db) as session:
        row = crud.get_active_key(session=session, secret=secret)
        assert row is not None and row.allowed_adapters == ["a", "b"] and row.tenant == "acme"
    listed = runner.invoke(app, ["keys", "list"])
    assert "svc" in listed.output and secret not in listed.output and "active" in listed.output
    assert runner.invoke(app, ["keys", "revoke", str(row.id)]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["keys", "list"]).output
    with session_scope(db) as session:
        assert crud.get_active_key(session=session, secret=secret) is None
    db.dispose()
    assert runner.invoke(app, ["keys", "revoke", "999"]).exit_code == 1


def test_openapi_check_detects_drift(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "openapi.yaml"
    assert runner.invoke(app, ["openapi", "--output", str(target)]).exit_code == 0
    assert runner.invoke(app, ["openapi", "--output", str(target), "--check"]).exit_code == 0
    target.write_text(target.read_text() + "\n# edited\n")
    assert runner.invoke(app, ["openapi", "--output", str(target), "--check"]).exit_code == 1

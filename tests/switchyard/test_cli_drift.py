"""``switchyard drift run`` and ``drift show`` against a real SQLite database, and the drift
switch of ``switchyard adapters policy``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from typer.testing import CliRunner

from monitoring.drift.models import DriftResult, DriftTrigger
from switchyard.cli import app
from switchyard.db import make_engine, session_scope
from switchyard.schema import create_all_tables
from tests.utils.drift import CODING, T0, log_traffic
from tests.utils.tuning import add_adapter
from tuner.jobs.models import JobTrigger, TuningJob
from tuner.policies import TuningPolicyBase, get_policy, upsert_policy


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The CLI's database (the data folder's SQLite file): ``bot`` with 60 requests about shopping
    then 60 about code, and ``quiet`` with none."""
    monkeypatch.setenv("SWITCHYARD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SWITCHYARD_DATABASE_URL", raising=False)
    monkeypatch.setenv("SWITCHYARD_MONITORING__DRIFT__WINDOW_ROWS", "60")
    monkeypatch.setenv("SWITCHYARD_MONITORING__DRIFT__MIN_ROWS", "30")
    monkeypatch.setenv("COLUMNS", "200")
    engine = make_engine(f"sqlite:///{tmp_path / 'switchyard.db'}")
    create_all_tables(engine)
    add_adapter(engine, "bot")
    add_adapter(engine, "quiet")
    rng = random.Random(4)
    log_traffic(engine, 60, rng=rng)
    log_traffic(engine, 60, rng=rng, topic=CODING, start=T0 + timedelta(hours=1), prefix="chatcmpl-c")
    yield engine
    engine.dispose()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def results(db: Engine) -> list[DriftResult]:
    with session_scope(db) as session:
        return list(session.exec(select(DriftResult).order_by(DriftResult.id)))


def test_drift_run_checks_every_adapter_and_show_lists_them(runner: CliRunner, db: Engine, tmp_path: Path) -> None:
    with session_scope(db) as session:
        upsert_policy(session=session, adapter="bot", policy_in=TuningPolicyBase(refresh_on_drift=True))
    ran = runner.invoke(app, ["drift", "run"])
    assert ran.exit_code == 0, ran.output
    bot, quiet = results(db)
    assert (bot.adapter, bot.drifted, bot.trigger) == ("bot", True, DriftTrigger.cli)
    assert quiet.status == "insufficient_data"
    assert "drifted" in ran.output and "insufficient data" in ran.output
    assert f"bot: report {tmp_path / 'drift-reports'}" in ran.output
    assert f"evidently ui --workspace {tmp_path / 'evidently'}" in ran.output
    with session_scope(db) as session:  # the drifted verdict asked the tuner, as through the API
        [job] = session.exec(select(TuningJob)).all()
    assert job.trigger is JobTrigger.drift

    shown = runner.invoke(app, ["drift", "show", "bot"])
    assert shown.exit_code == 0, shown.output
    assert "prompt" in shown.output and "quiet" not in shown.output
    one = runner.invoke(app, ["drift", "show", "--id", str(bot.id)])
    assert one.exit_code == 0, one.output
    assert "abs_text_content_drift" in one.output and "latency_ms *" in one.output


def test_drift_run_with_pinned_windows_and_unknown_names(runner: CliRunner, db: Engine) -> None:
    window = ["--reference-start", T0.isoformat(), "--reference-end", (T0 + timedelta(seconds=30)).isoformat()]
    current = [
        "--current-start",
        (T0 + timedelta(seconds=30)).isoformat(),
        "--current-end",
        (T0 + timedelta(seconds=60)).isoformat(),
    ]
    ran = runner.invoke(app, ["drift", "run", "bot", *window, *current])
    assert ran.exit_code == 0, ran.output
    [result] = results(db)
    assert (result.reference_kind, result.reference_rows, result.current_rows, result.drifted) == (
        "window",
        30,
        30,
        False,
    )
    assert runner.invoke(app, ["drift", "run", "ghost"]).exit_code == 1
    backwards = runner.invoke(
        app, ["drift", "run", "bot", "--current-start", "2026-03-02", "--current-end", "2026-03-01"]
    )
    assert backwards.exit_code == 2 and "start must be before its end" in backwards.output
    assert runner.invoke(app, ["drift", "show", "ghost"]).exit_code == 1
    assert runner.invoke(app, ["drift", "show", "--id", "999"]).exit_code == 1


def test_the_policy_command_switches_refresh_on_drift(runner: CliRunner, db: Engine) -> None:
    on = runner.invoke(app, ["adapters", "policy", "bot", "--refresh-on-drift"])
    assert on.exit_code == 0, on.output
    assert '"refresh_on_drift": true' in on.output
    with session_scope(db) as session:
        assert (row := get_policy(session=session, adapter="bot")) is not None and row.refresh_on_drift
    runner.invoke(app, ["adapters", "policy", "bot", "--no-refresh-on-drift"])
    with session_scope(db) as session:
        assert (row := get_policy(session=session, adapter="bot")) is not None and not row.refresh_on_drift

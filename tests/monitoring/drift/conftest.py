"""Drift monitors on the test databases, with their workspace and reports in a temporary folder."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import Tracer
from sqlalchemy.engine import Engine

from monitoring.drift.actions import Webhook
from monitoring.drift.monitor import DriftMonitor
from monitoring.drift.workspace import DriftWorkspace
from monitoring.tracing import NOOP_TRACER
from switchyard.config import DriftSettings
from tests.utils.db import sqlite_engine

# Small windows keep a check around a second on two cores; the tests' traffic is sized to them.
SMALL = {"min_rows": 30, "window_rows": 60, "sample_size": 200}

MonitorFactory = Callable[..., DriftMonitor]
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every drift test runs with the network cut but for loopback (the test databases and the
    webhook receiver): a check that tried to download anything (NLTK data, a model, telemetry)
    would fail here rather than hang in production."""
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise OSError(f"drift tests may not reach {address[0]}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only, for the tests that check many windows: their statistics are the point, and
    both databases hand the same rows to the same comparison."""
    with sqlite_engine(tmp_path) as engine:
        yield engine


@pytest.fixture
def make_monitor(tmp_path: Path) -> Iterator[MonitorFactory]:
    """``make_monitor(db, webhook=..., **settings)``: a monitor on ``db`` (settings over :data:`SMALL`)."""
    made: list[DriftMonitor] = []

    def make(
        db: Engine,
        *,
        webhook: Webhook | None = None,
        on_job_queued: Callable[[], None] | None = None,
        tracer: Tracer = NOOP_TRACER,
        **fields: Any,
    ) -> DriftMonitor:
        monitor = DriftMonitor(
            db=db,
            settings=DriftSettings.model_validate(SMALL | fields),
            workspace=DriftWorkspace(tmp_path / "evidently", tmp_path / "reports"),
            snapshot_root=tmp_path / "datasets",
            default_preset="demo",
            webhook=webhook,
            report_url=lambda result_id: f"/admin/drift/{result_id}/report",
            on_job_queued=on_job_queued,
            tracer=tracer,
        )
        made.append(monitor)
        return monitor

    yield make
    for monitor in made:
        monitor.close()

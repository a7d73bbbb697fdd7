"""A check from windows to actions, on SQLite and PostgreSQL: the stored result, its report and
Evidently run, and what a drifted verdict sets off (log, webhook, one refresh job)."""

from __future__ import annotations

import gzip
import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from evidently.ui.workspace import Workspace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.exceptions import AdapterNotFound
from monitoring.drift.actions import Webhook
from monitoring.drift.crud import get_result
from monitoring.drift.models import DriftStatus, DriftTrigger, ReferenceKind, TimeWindow, Windows
from switchyard.db import session_scope
from tests.monitoring.drift.conftest import MonitorFactory
from tests.utils.drift import CODING, T0, log_traffic, trained_on
from tests.utils.tuning import add_adapter
from tuner.jobs.crud import create_job
from tuner.jobs.models import JobStatus, JobTrigger, TuningJob, TuningJobBase
from tuner.manifests import create_manifest
from tuner.models import CurationManifestCreate
from tuner.policies import TuningPolicyBase, upsert_policy

API = DriftTrigger.api


def shifted_traffic(db: Engine, adapter: str = "bot", n: int = 60) -> list[dict]:
    """``n`` requests about shopping, then ``n`` about code: the latest window has drifted."""
    add_adapter(db, adapter)
    rng = random.Random(adapter)
    before = log_traffic(db, n, rng=rng, adapter=adapter, prefix=f"chatcmpl-{adapter}a")
    after = log_traffic(
        db, n, rng=rng, adapter=adapter, topic=CODING, start=T0 + timedelta(hours=1), prefix=f"chatcmpl-{adapter}b"
    )
    return before + after


# -- the webhook, against a real local HTTP server ---------------------------------------------


class Receiver:
    """A local HTTP server answering the scripted statuses in turn (then 200), optionally slowly."""

    def __init__(self, statuses: list[int], delay_s: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.delay_s = delay_s
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.bodies.append(body)
                time.sleep(receiver.delay_s)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/drift"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver([])
    yield made
    made.close()


def test_a_check_is_stored_with_its_report_and_its_evidently_run(
    db: Engine, make_monitor: MonitorFactory, tmp_path: Path
) -> None:
    add_adapter(db, "bot")
    log_traffic(db, 300, rng=random.Random(1))
    monitor = make_monitor(db, window_rows=150, sample_size=100, reports_kept=1)
    first = monitor.check("bot", trigger=API)
    assert first.status is DriftStatus.ok and not first.drifted and first.drift_share == 0.0
    assert first.reference_kind is ReferenceKind.previous_window
    assert (first.reference_rows, first.current_rows, first.sample_size) == (150, 150, 100)
    assert {c["reference_values"] for c in first.columns if c["column"] == "prompt"} == {100}
    assert first.duration_s > 0 and first.report_file is not None
    html = gzip.decompress(monitor.workspace.report_path(first.report_file).read_bytes()).decode()
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:500].lower()

    second = monitor.check("bot", trigger=DriftTrigger.schedule)
    with session_scope(db) as session:
        pruned = get_result(session=session, result_id=first.id or 0)
    assert pruned is not None and pruned.report_file is None  # only the newest report is kept
    assert not monitor.workspace.report_path(first.report_file).exists()
    assert monitor.workspace.report_path(second.report_file or "").exists()

    workspace = Workspace(str(tmp_path / "evidently"))
    [project] = workspace.search_project("bot")
    runs = workspace.list_runs(project.id)
    assert {str(run) for run in runs} == {first.evidently_snapshot_id, second.evidently_snapshot_id}
    assert len(workspace.get_dashboard(project.id).panels) >= 5


def test_too_little_traffic_is_insufficient_data(db: Engine, make_monitor: MonitorFactory) -> None:
    add_adapter(db, "bot")
    log_traffic(db, 40, rng=random.Random(2))
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    result = make_monitor(db, tracer=provider.get_tracer("test")).check("bot", trigger=API)
    [span] = spans.get_finished_spans()
    assert span.name == "drift bot" and span.attributes is not None
    assert span.attributes["switchyard.drift.status"] == "insufficient_data"
    assert span.attributes["switchyard.drift.current_rows"] == 40
    assert result.status is DriftStatus.insufficient_data and not result.drifted
    assert result.reason == "too few rows to compare (0 rows in the reference window; 30 needed)"
    assert (result.current_rows, result.report_file, result.drift_share) == (40, None, None)
    with pytest.raises(AdapterNotFound):
        make_monitor(db).check("nobody", trigger=API)


def test_the_reference_can_be_pinned_or_the_training_snapshot(db: Engine, make_monitor: MonitorFactory) -> None:
    rows = shifted_traffic(db)
    monitor = make_monitor(db)
    pinned = monitor.check(
        "bot",
        trigger=API,
        windows=Windows(
            reference=TimeWindow(T0, T0 + timedelta(seconds=30)),
            current=TimeWindow(T0 + timedelta(seconds=30), T0 + timedelta(seconds=60)),
        ),
    )
    assert pinned.reference_kind is ReferenceKind.window and not pinned.drifted
    assert (pinned.reference_rows, pinned.current_rows) == (30, 30)

    with Session(db) as session:
        create_manifest(
            session=session,
            manifest_in=CurationManifestCreate(
                snapshot_id="bot-1",
                adapter="bot",
                path="/data/datasets/bot/bot-1",
                window_end=T0 + timedelta(minutes=5),
                considered=60,
                train_count=60,
                holdout_count=0,
                source_request_ids=[row["id"] for row in rows[:60]],
            ),
        )
    trained_on(db, "bot", "bot-1")
    snapshot = monitor.check("bot", trigger=API)
    assert snapshot.reference_kind is ReferenceKind.snapshot and snapshot.reference_snapshot_id == "bot-1"
    assert snapshot.drifted and snapshot.reference_rows == 60


def jobs_of(db: Engine, adapter: str) -> list[TuningJob]:
    with session_scope(db) as session:
        return list(session.exec(select(TuningJob).where(TuningJob.adapter == adapter)))


def test_a_drifted_verdict_alerts_and_queues_one_refresh_when_the_policy_asks(
    db: Engine, make_monitor: MonitorFactory, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    shifted_traffic(db, "asks")
    shifted_traffic(db, "silent")
    with session_scope(db) as session:
        upsert_policy(session=session, adapter="asks", policy_in=TuningPolicyBase(refresh_on_drift=True))
        upsert_policy(session=session, adapter="silent", policy_in=TuningPolicyBase(schedule_interval_s=3600))
    woken = []
    webhook = Webhook(receiver.url, timeout_s=2, attempts=2, backoff_s=0.01)
    monitor = make_monitor(db, webhook=webhook, on_job_queued=lambda: woken.append(1))
    with caplog.at_level(logging.WARNING, logger="monitoring.drift.actions"):
        first = monitor.check("asks", trigger=API)
    assert first.drifted
    [line] = [r for r in caplog.records if r.getMessage().startswith("drift.detected")]
    assert f"adapter=asks result_id={first.id} " in line.getMessage() and "prompt" in line.getMessage()
    assert line.drift_alert["report_url"] == f"/admin/drift/{first.id}/report"  # type: ignore[attr-defined]

    [job] = jobs_of(db, "asks")
    assert (job.trigger, job.status, job.model) == (JobTrigger.drift, JobStatus.queued, "asks")
    assert monitor.check("asks", trigger=API).drifted  # the same verdict again, its job still queued
    assert len(jobs_of(db, "asks")) == 1 and woken == [1]
    assert monitor.alerts.snapshot() == {"asks": 2}

    assert monitor.check("silent", trigger=API).drifted
    assert jobs_of(db, "silent") == []

    monitor.close(wait=True)  # delivers the alerts still queued
    assert [(alert["type"], alert["adapter"]) for alert in receiver.bodies] == [("drift.detected", "asks")] * 2 + [
        ("drift.detected", "silent")
    ]
    alert = receiver.bodies[0]
    assert alert["result_id"] == first.id and alert["drift_share"] == first.drift_share
    assert "prompt" in alert["drifted_columns"] and alert["report_url"] == f"/admin/drift/{first.id}/report"


def test_no_refresh_while_a_job_of_the_adapter_runs(db: Engine, make_monitor: MonitorFactory) -> None:
    shifted_traffic(db, "busy")
    with session_scope(db) as session:
        upsert_policy(session=session, adapter="busy", policy_in=TuningPolicyBase(refresh_on_drift=True))
        running = create_job(
            session=session, job_in=TuningJobBase(adapter="busy", model="busy", trigger=JobTrigger.schedule)
        )
        running.status = JobStatus.running
        session.add(running)
        session.commit()
    assert make_monitor(db).check("busy", trigger=API).drifted
    assert [job.trigger for job in jobs_of(db, "busy")] == [JobTrigger.schedule]


def test_the_webhook_is_retried_until_delivered(receiver: Receiver) -> None:
    receiver.statuses = [503, 500]
    webhook = Webhook(receiver.url, timeout_s=2, attempts=3, backoff_s=0.01)
    try:
        webhook.send({"type": "drift.detected", "adapter": "bot"}).result(timeout=10)
    finally:
        webhook.close()
    assert len(receiver.bodies) == 3 and receiver.bodies[-1] == {"type": "drift.detected", "adapter": "bot"}


def test_a_webhook_that_refuses_or_hangs_is_given_up_without_blocking(receiver: Receiver) -> None:
    receiver.statuses = [400]
    webhook = Webhook(receiver.url, timeout_s=0.3, attempts=3, backoff_s=0.01)
    try:
        with pytest.raises(Exception, match="400"):  # a refusal is not retried
            webhook.send({"adapter": "bot"}).result(timeout=10)
        assert len(receiver.bodies) == 1
        receiver.delay_s = 1.0
        started = time.perf_counter()
        pending = webhook.send({"adapter": "bot"})
        assert time.perf_counter() - started < 0.1  # queued, not sent on the caller's thread
        with pytest.raises(Exception, match="timed out"):
            pending.result(timeout=10)
        assert len(receiver.bodies) == 4  # three timed-out tries
    finally:
        webhook.close()

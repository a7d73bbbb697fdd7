"""Gateway metrics: counted from log rows, gauges read at scrape time, one registry per app."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from monitoring.metrics import GatewayMetrics, GaugeSources, LoadedAdapter
from monitoring.sources import CachedReading, count_training_jobs
from switchyard.db import session_scope
from tuner.jobs import crud
from tuner.jobs.models import JobStatus, JobTrigger, TuningJobBase


def make_with(backlog: list[int] | None = None, **sources: Any) -> GatewayMetrics:
    backlog = backlog or [0]
    return GatewayMetrics(
        GaugeSources(
            spool_backlog_bytes=lambda: backlog[0],
            drain_failures=lambda: 2,
            sequences_in_flight=lambda: 5,
            spool_alert_bytes=100,
            rows_dropped=lambda: 7,
            **sources,
        )
    )


def make(backlog: list[int]) -> GatewayMetrics:
    return make_with(backlog)


ROW = {
    "endpoint": "chat.completions",
    "adapter": "bot",
    "adapter_version": 3,
    "status": 200,
    "prompt_tokens": 10,
    "completion_tokens": 4,
    "latency_ms": 120.0,
    "ttft_ms": 30.0,
}


def test_requests_tokens_and_latency_are_counted() -> None:
    metrics = make([0])
    metrics.observe(ROW)
    metrics.observe({**ROW, "status": 429, "prompt_tokens": None, "latency_ms": None, "ttft_ms": None})
    text = metrics.render().decode()
    labels = 'adapter="bot",adapter_version="3",endpoint="chat.completions"'
    assert f'switchyard_requests_total{{{labels},status="200"}} 1.0' in text
    assert f'switchyard_requests_total{{{labels},status="429"}} 1.0' in text
    assert f'switchyard_tokens_total{{{labels},kind="completion",status="200"}} 4.0' in text
    assert f'switchyard_request_seconds_count{{{labels},status="200"}} 1.0' in text
    assert f'switchyard_time_to_first_token_seconds_bucket{{{labels},le="0.05",status="200"}} 1.0' in text
    metrics.shutdown()


def test_gauges_follow_their_sources_and_the_alert_threshold() -> None:
    backlog = [10]
    metrics = make(backlog)
    text = metrics.render().decode()
    assert "switchyard_log_spool_backlog_bytes 10.0" in text and "switchyard_log_spool_alert 0.0" in text
    assert "switchyard_log_drain_consecutive_failures 2.0" in text and "switchyard_sequences_in_flight 5.0" in text
    assert "switchyard_log_rows_dropped 7.0" in text
    backlog[0] = 101
    assert "switchyard_log_spool_alert 1.0" in metrics.render().decode()
    other = make([0])  # a second app in the same process has its own registry
    assert "switchyard_log_spool_backlog_bytes 0.0" in other.render().decode()
    metrics.shutdown()
    other.shutdown()


def test_engine_residency_jobs_and_drift_gauges() -> None:
    metrics = GatewayMetrics(
        GaugeSources(
            spool_backlog_bytes=lambda: 0,
            drain_failures=lambda: 0,
            sequences_in_flight=lambda: 3,
            spool_alert_bytes=100,
            max_sequences=16,
            requests_waiting_for_slot=lambda: 2,
            loaded_adapters=lambda: [LoadedAdapter("bot", 3, True), LoadedAdapter("bot", 4, False)],
            training_jobs=lambda: {"queued": 1, "running": 0},
            drift_share=lambda: {"bot": 0.25},
            drift_detected=lambda: {"bot": True, "other": False},
        )
    )
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("switchyard_sequences_limit", ())] == 16
    assert samples[("switchyard_requests_waiting_for_slot", ())] == 2
    assert samples[("switchyard_adapters_loaded", ())] == 2
    bot3 = (("adapter", "bot"), ("adapter_version", "3"), ("pinned", "true"))
    assert samples[("switchyard_adapter_loaded", bot3)] == 1
    assert samples[("switchyard_training_jobs", (("status", "queued"),))] == 1
    assert samples[("switchyard_training_jobs", (("status", "running"),))] == 0
    assert samples[("switchyard_drift_share", (("adapter", "bot"),))] == 0.25
    assert samples[("switchyard_drift_detected", (("adapter", "bot"),))] == 1
    assert samples[("switchyard_drift_detected", (("adapter", "other"),))] == 0
    metrics.shutdown()


async def test_database_gauges_are_read_off_the_loop_and_cached() -> None:
    now = [0.0]
    reads: list[str] = []
    answers: list[dict[str, int] | Exception] = [{"queued": 1}, RuntimeError("database down"), {"queued": 5}]

    def read() -> dict[str, int]:
        reads.append(threading.current_thread().name)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    jobs = CachedReading(read, ttl_s=5, initial={}, name="jobs", clock=lambda: now[0])
    metrics = make_with(training_jobs=jobs)
    assert 'switchyard_training_jobs{status="queued"} 1.0' in (await metrics.scrape()).decode()
    assert threading.main_thread().name not in reads  # a worker thread queried
    now[0] = 4.9
    await metrics.scrape()
    assert len(reads) == 1  # cached between scrapes
    now[0] = 5
    assert 'switchyard_training_jobs{status="queued"} 1.0' in (await metrics.scrape()).decode()  # failed: kept
    now[0] = 9
    await metrics.scrape()
    assert len(reads) == 2  # a failure waits for the period too
    now[0] = 10
    assert 'switchyard_training_jobs{status="queued"} 5.0' in (await metrics.scrape()).decode()
    metrics.shutdown()


def test_training_jobs_are_counted_by_status(db: Engine) -> None:
    with session_scope(db) as session:
        for adapter in ("a", "b", "c"):
            crud.create_job(
                session=session, job_in=TuningJobBase(adapter=adapter, model=adapter, trigger=JobTrigger.admin)
            )
        crud.claim_next(session=session, worker="test:1")
    counts = count_training_jobs(db)
    assert counts == {status.value: 0 for status in JobStatus} | {"queued": 2, "running": 1}

"""A fine-tuning job is traced: a span for the attempt and one per stage, with its ending. The
jobs here end before training (nothing to train on, or a refused job), so no child runs; the
stages' spans come from the same place whichever stage a job reaches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy.engine import Engine

from monitoring.tracing import TUNER_SCOPE, Tracing, build_tracing
from switchyard.config import MonitoringSettings, TunerSettings
from switchyard.db import session_scope
from tests.utils.db import sqlite_engine
from tuner.jobs import crud
from tuner.jobs.models import JobOutcome, JobStatus, JobTrigger, TuningJobBase
from tuner.jobs.pipeline import AdapterState, JobRun, PipelineSettings, TuningPipeline


class Registry:
    """The registry as a job that never reaches a candidate sees it."""

    def __init__(self, tenant: str | None) -> None:
        self.tenant = tenant

    async def adapter_state(self, adapter: str) -> AdapterState:
        return AdapterState(exists=True, tenant=self.tenant)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    with sqlite_engine(tmp_path) as engine:
        yield engine


@pytest.fixture
def traced() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracing = build_tracing(MonitoringSettings(), exporter=exporter)
    yield tracing, exporter
    tracing.shutdown()


async def run_job(
    db: Engine, tmp_path: Path, demo_model: Path, tracing: Tracing, *, owner: str | None
) -> tuple[JobStatus, JobOutcome | None]:
    with session_scope(db) as session:
        crud.create_job(
            session=session,
            job_in=TuningJobBase(adapter="bot", model="bot", trigger=JobTrigger.admin, tenant="acme"),
        )
        job = crud.claim_next(session=session, worker="test:1")
    assert job is not None
    pipeline = TuningPipeline(
        db=db,
        registry=Registry(owner),  # type: ignore[arg-type]
        settings=PipelineSettings(
            tuner=TunerSettings(),
            base_model=str(demo_model),
            snapshot_root=tmp_path / "datasets",
            jobs_dir=tmp_path / "jobs",
            files_dir=tmp_path / "files",
            default_preset="demo",
        ),
        tracer=tracing.tracer(TUNER_SCOPE),
    )
    finished = await pipeline.run(JobRun(job))
    return JobStatus(finished.status), finished.outcome


def by_name(tracing: Tracing, exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    assert tracing.provider is not None
    tracing.provider.force_flush()
    return {span.name: span for span in exporter.get_finished_spans()}


async def test_a_job_span_with_its_stage(db: Engine, tmp_path: Path, demo_model: Path, traced) -> None:  # type: ignore[no-untyped-def]
    tracing, exporter = traced
    assert await run_job(db, tmp_path, demo_model, tracing, owner="acme") == (JobStatus.succeeded, JobOutcome.skipped)
    spans = by_name(tracing, exporter)
    assert set(spans) == {"fine_tuning bot", "curating bot"}
    job, stage = spans["fine_tuning bot"], spans["curating bot"]
    assert job.instrumentation_scope is not None and job.instrumentation_scope.name == "switchyard.tuner"
    assert job.attributes is not None and job.attributes["switchyard.job.id"].startswith("ftjob-")  # type: ignore[union-attr]
    assert {k: v for k, v in job.attributes.items() if k != "switchyard.job.id"} == {
        "switchyard.adapter": "bot",
        "switchyard.tenant": "acme",
        "switchyard.job.trigger": "admin",
        "switchyard.job.attempt": 1,
        "switchyard.job.status": "succeeded",
        "switchyard.job.outcome": "skipped",
    }
    assert job.status.status_code == StatusCode.UNSET
    assert stage.parent is not None and job.context is not None
    assert stage.parent.span_id == job.context.span_id and stage.context.trace_id == job.context.trace_id  # type: ignore[union-attr]
    assert (stage.attributes or {})["switchyard.job.stage"] == "curating"
    assert job.start_time <= stage.start_time and stage.end_time <= job.end_time  # type: ignore[operator]


async def test_a_failed_job_is_an_error_span(db: Engine, tmp_path: Path, demo_model: Path, traced) -> None:  # type: ignore[no-untyped-def]
    tracing, exporter = traced
    status, _ = await run_job(db, tmp_path, demo_model, tracing, owner="globex")  # another tenant's adapter
    assert status == JobStatus.failed
    spans = by_name(tracing, exporter)
    assert set(spans) == {"fine_tuning bot"}  # refused before its first stage
    job = spans["fine_tuning bot"]
    assert job.status.status_code == StatusCode.ERROR and job.status.description == "invalid_job"
    assert (job.attributes or {})["switchyard.job.status"] == "failed"

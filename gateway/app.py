"""The FastAPI application and its lifespan: database, engine, router, traffic log."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import REGISTRY

from adapters.base_model import BaseModelSpec
from adapters.config import artifact_store, engine_limits
from gateway import health, metrics_router
from gateway.admin import keys_router, requests_router, tuning_policy_router
from gateway.admin.tuning_policy_service import TuningPolicyService
from gateway.auth.service import AuthService
from gateway.chat import router as chat_router
from gateway.chat.service import ChatService
from gateway.completions import router as completions_router
from gateway.completions.service import CompletionService
from gateway.dashboard import router as dashboard_router
from gateway.drift import router as drift_router
from gateway.drift.service import DriftService, report_url
from gateway.engine.admission import AdmissionController
from gateway.engine.protocol import EngineClient
from gateway.engine.supervisor import SupervisedEngine
from gateway.engine.vllm_client import VLLMEngineClient
from gateway.error_responses import register_error_handlers
from gateway.evaluation import AdmittedScorer, EngineScorer, EvaluationTokenizer
from gateway.feedback import router as feedback_router
from gateway.feedback.service import FeedbackService
from gateway.files import router as files_router
from gateway.files.service import FilesService
from gateway.fine_tuning import router as fine_tuning_router
from gateway.fine_tuning.candidates import RegistryCandidates
from gateway.fine_tuning.service import FineTuningService
from gateway.generation.service import GenerationService
from gateway.middleware import RequestIdMiddleware, TraceContextMiddleware
from gateway.models import router as models_router
from gateway.registry import router as registry_router
from gateway.registry.service import RegistryService
from gateway.routing import ModelRouter
from gateway.services import Services
from gateway.traffic.drain import LogDrain
from gateway.traffic.service import TrafficLogService
from gateway.traffic.spool import Spool
from monitoring.drift import schedule as drift_schedule
from monitoring.drift.crud import drift_share_by_adapter, drifted_by_adapter
from monitoring.drift.monitor import build_monitor
from monitoring.metrics import GatewayMetrics, GaugeSources, LoadedAdapter
from monitoring.sources import CachedReading, count_training_jobs
from monitoring.tracing import DRIFT_SCOPE, TUNER_SCOPE, build_tracing
from switchyard import __version__
from switchyard.config import EngineSettings, Settings
from switchyard.db import make_engine
from switchyard.traffic.crud import insert_logs_idempotent, probe_log_insert
from tuner.files import FileLimits
from tuner.jobs.pipeline import PipelineSettings, TuningPipeline
from tuner.jobs.worker import JobWorker
from tuner.scheduling import RefreshScheduler

logger = logging.getLogger(__name__)
EngineFactory = Callable[[str, EngineSettings], EngineClient]


def _unique_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


async def _build_services(
    settings: Settings, engine_factory: EngineFactory, span_exporter: SpanExporter | None = None
) -> Services:
    """Everything the routes use. The database schema is the caller's (``switchyard serve``
    prepares it before the app starts)."""
    db = make_engine(settings.resolved_database_url)
    tracing = build_tracing(settings.monitoring, exporter=span_exporter)
    model = settings.resolved_base_model
    store = artifact_store(settings)
    # Restarts the engine by itself when its core dies (the router re-loads adapters after).
    engine = SupervisedEngine(
        engine_factory(model, settings.engine),
        backoff_s=settings.engine.restart_backoff_s,
        backoff_max_s=settings.engine.restart_backoff_max_s,
    )
    # The evaluation gate's tokenizer is the prompt tokenizer plus answer rendering: one instance.
    tokenizer = await asyncio.to_thread(EvaluationTokenizer, model)
    base = await asyncio.to_thread(BaseModelSpec.load, model)
    router = ModelRouter(
        base_model_name=settings.served_model_name,
        base_fingerprint=base.fingerprint,
        db=db,
        store=store,
        engine=engine,
        max_loras=settings.engine.max_loras,
        warm_retry_max_s=settings.engine.warm_retry_max_s,
    )
    engine.on_ready(router.on_engine_ready)
    await router.refresh()

    def insert_batch(records: Sequence[dict[str, Any]]) -> None:
        insert_logs_idempotent(engine=db, records=records)

    log_settings = settings.traffic_log
    drain = LogDrain(
        Spool(settings.spool_dir, fsync=log_settings.spool_fsync),  # refuses a folder another process holds
        insert_batch,
        batch_size=log_settings.batch_size,
        interval_s=log_settings.flush_interval_s,
        retry_max_s=log_settings.retry_max_s,
        max_field_chars=log_settings.max_field_chars,
        probe=partial(probe_log_insert, engine=db),
    )
    admission = AdmissionController(settings.server.max_queued_requests, retry_after_s=settings.server.retry_after_s)
    metrics = GatewayMetrics(
        GaugeSources(
            spool_backlog_bytes=lambda: drain.spool.backlog_bytes,
            drain_failures=lambda: drain.failures,
            sequences_in_flight=lambda: admission.in_flight,
            spool_alert_bytes=settings.monitoring.spool_alert_bytes,
            rows_dropped=lambda: drain.dropped,
            rows_dead_lettered=lambda: drain.dead_lettered,
            registry_lagging_versions=lambda: len(router.lagging),
            engine_restarts=lambda: engine.restarts,
            max_sequences=settings.server.max_queued_requests,
            requests_waiting_for_slot=lambda: router.residency.waiting_for_slot,
            loaded_adapters=lambda: [LoadedAdapter(*loaded) for loaded in router.residency.loaded],
            training_jobs=CachedReading(
                partial(count_training_jobs, db),
                ttl_s=settings.monitoring.gauge_cache_s,
                initial={},
                name="training jobs by status",
            ),
            drift_share=CachedReading(
                partial(drift_share_by_adapter, db),
                ttl_s=settings.monitoring.gauge_cache_s,
                initial={},
                name="drift share by adapter",
            ),
            drift_detected=CachedReading(
                partial(drifted_by_adapter, db),
                ttl_s=settings.monitoring.gauge_cache_s,
                initial={},
                name="drift verdicts by adapter",
            ),
            drift_alerts=lambda: drift_monitor.alerts.snapshot(),  # built below; read at scrape time
        ),
        also_render=(REGISTRY,),  # vLLM's own vllm:* gauges (stat logging is on)
    )

    def log(row: dict[str, Any]) -> asyncio.Future[None]:
        # Handed to the drain first (it never loses a row uncounted), then counted. The future
        # resolves once the row is on the spool: await it before the response's last byte.
        appended = drain.record(row)
        metrics.observe(row)
        return appended

    generation = GenerationService(
        engine=engine, admission=admission, tracker=router, log=log, tracer=tracing.generation
    )
    registry = RegistryService(
        db=db,
        store=store,
        router=router,
        base=base,
        limits=engine_limits(settings),
        scratch_dir=settings.scratch_dir,
        import_roots=settings.registry.import_roots,
        engine_ready=lambda: engine.is_ready,
    )
    pipeline = TuningPipeline(
        db=db,
        registry=RegistryCandidates(
            db=db, registry=registry, scorer=AdmittedScorer(EngineScorer(engine, tokenizer), router)
        ),
        settings=PipelineSettings(
            tuner=settings.tuner,
            base_model=model,
            snapshot_root=settings.snapshot_dir,
            jobs_dir=settings.jobs_dir,
            files_dir=settings.files_dir,
            default_preset=settings.training_preset,
        ),
        tracer=tracing.tracer(TUNER_SCOPE),
    )
    worker = JobWorker(db=db, pipeline=pipeline, settings=settings.tuner)
    loop = asyncio.get_running_loop()
    # A drift refresh is queued from the checking thread; the worker looks at once.
    drift_monitor = build_monitor(
        db,
        settings,
        report_url=report_url,
        on_job_queued=lambda: loop.call_soon_threadsafe(worker.wake),
        tracer=tracing.tracer(DRIFT_SCOPE),
    )
    scheduler = (
        RefreshScheduler(
            db,
            settings.tuner,
            settings.training_preset,
            extra_jobs=[drift_schedule.drift_job(settings.monitoring.drift)],
        )
        if settings.tuner.scheduler_enabled
        else None
    )
    return Services(
        settings=settings,
        auth=AuthService(
            db=db,
            admin_key=settings.resolve_admin_key(),
            metrics_token=settings.resolve_metrics_token(),
            settings=settings.auth,
        ),
        db=db,
        store=store,
        engine=engine,
        admission=admission,
        router=router,
        drain=drain,
        metrics=metrics,
        tracing=tracing,
        tokenizer=tokenizer,
        chat=ChatService(generation=generation, router=router, tokenizer=tokenizer),
        completions=CompletionService(generation=generation, router=router, tokenizer=tokenizer),
        feedback=FeedbackService(db=db, drain=drain, read_wait_s=log_settings.read_wait_s),
        traffic=TrafficLogService(db=db, drain=drain, read_wait_s=log_settings.read_wait_s),
        registry=registry,
        fine_tuning=FineTuningService(
            db=db,
            base_model_name=settings.served_model_name,
            files_dir=settings.files_dir,
            default_preset=settings.training_preset,
            on_queue_change=worker.wake,
        ),
        tuning_worker=worker,
        files=FilesService(
            db=db,
            files_dir=settings.files_dir,
            limits=FileLimits(max_bytes=settings.tuner.max_file_bytes, max_lines=settings.tuner.max_file_lines),
        ),
        tuning_policies=TuningPolicyService(db=db, scheduler=scheduler),
        refresh_scheduler=scheduler,
        drift=DriftService(db=db, monitor=drift_monitor, drain=drain, read_wait_s=log_settings.read_wait_s),
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    services = await _build_services(app.state.settings, app.state.engine_factory, app.state.span_exporter)
    app.state.services = services
    services.drain.start()  # replays whatever a previous process left in the spool
    services.router.start_watching(services.settings.registry.poll_interval_s)
    drift_schedule.install(services.drift.monitor)  # before a stored drift check can fire
    if services.refresh_scheduler is not None:
        # It only queues jobs (the worker runs them), so it need not wait for the engine; the
        # refreshes that fell due while no process ran are queued now.
        services.refresh_scheduler.start()

    # The engine loads in the background: /health answers at once, /ready once it is loaded.
    # The supervisor keeps restarting it if it dies, and tells the router each time it is up.
    async def start_engine() -> None:
        started = time.perf_counter()
        await services.engine.start()
        # Jobs need the engine (the gate scores through it), so the worker starts once it is up.
        services.tuning_worker.start()
        # The startup heap (torch, transformers, vLLM) is long-lived: freezing it keeps the
        # cyclic GC from walking it on every oldest-generation collection, pauses that showed
        # as TTFT tail latency. vLLM's own API server does the same.
        gc.collect()
        gc.freeze()
        logger.info("Switchyard is ready: engine loaded in %.0f s", time.perf_counter() - started)

    engine_start = asyncio.create_task(start_engine(), name="engine-start")
    try:
        yield
    finally:
        if not engine_start.done():
            engine_start.cancel()
        await asyncio.gather(engine_start, return_exceptions=True)
        if services.refresh_scheduler is not None:
            services.refresh_scheduler.shutdown()
        drift_schedule.install(None)
        services.drift.close()
        services.drift.monitor.close()
        await services.tuning_worker.stop()  # running trainings are queued again, to resume
        await services.router.stop()
        await services.drain.stop()
        await services.engine.shutdown()
        services.tokenizer.close()
        services.metrics.shutdown()
        services.tracing.shutdown()  # after everything that may still end a span
        services.db.dispose()


def _without_fastapi_422(app: FastAPI) -> None:
    """Validation errors are answered with 400 and OpenAI's envelope, so FastAPI's default
    422 ``HTTPValidationError`` is not part of the contract."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema["paths"].values():
                for operation in operations.values():
                    operation["responses"].pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings,
    *,
    engine_factory: EngineFactory = VLLMEngineClient,
    span_exporter: SpanExporter | None = None,
) -> FastAPI:
    """``span_exporter`` receives the app's spans instead of the configured OTLP collector
    (tests pass OpenTelemetry's in-memory exporter)."""
    app = FastAPI(
        title="Switchyard",
        version=__version__,
        summary="OpenAI-compatible gateway serving many LoRA adapters on one vLLM base model.",
        lifespan=lifespan,
        generate_unique_id_function=_unique_id,
    )
    app.state.settings = settings
    app.state.engine_factory = engine_factory
    app.state.span_exporter = span_exporter
    register_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(TraceContextMiddleware)
    for module in (
        health,
        metrics_router,
        registry_router,
        chat_router,
        completions_router,
        models_router,
        feedback_router,
        fine_tuning_router,
        keys_router,
        requests_router,
        tuning_policy_router,
        files_router,
        drift_router,
    ):
        app.include_router(module.router)
    app.include_router(fine_tuning_router.admin_router)
    app.include_router(requests_router.traffic_router)
    app.include_router(dashboard_router.router)
    _without_fastapi_422(app)
    return app

"""The FastAPI application and its lifespan: database, engine, router, traffic log."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from adapters.base_model import BaseModelSpec
from adapters.config import AdapterSettings
from adapters.store import make_store
from gateway import health, metrics_router
from gateway.admin import keys_router, requests_router
from gateway.auth.service import AuthService
from gateway.chat import router as chat_router
from gateway.chat.service import ChatService
from gateway.completions import router as completions_router
from gateway.completions.service import CompletionService
from gateway.config import GatewaySettings
from gateway.engine.admission import AdmissionController
from gateway.engine.protocol import EngineClient
from gateway.engine.tokenizer import PromptTokenizer
from gateway.errors import register_error_handlers
from gateway.feedback import router as feedback_router
from gateway.feedback.service import FeedbackService
from gateway.generation.service import GenerationService
from gateway.middleware import RequestIdMiddleware
from gateway.models import router as models_router
from gateway.registry import router as registry_router
from gateway.registry.service import RegistryService
from gateway.routing import ModelRouter
from gateway.services import Services
from gateway.traffic.crud import insert_logs_idempotent
from gateway.traffic.drain import LogDrain
from gateway.traffic.service import TrafficLogService
from gateway.traffic.spool import Spool
from monitoring.config import MonitoringSettings
from monitoring.metrics import GatewayMetrics, GaugeSources
from switchyard import __version__
from switchyard.config import Settings
from switchyard.db import create_tables, make_engine

logger = logging.getLogger(__name__)
EngineFactory = Callable[[str, GatewaySettings], EngineClient]


def served_model_name(settings: Settings, gateway_settings: GatewaySettings) -> str:
    if gateway_settings.served_model_name:
        return gateway_settings.served_model_name
    path = Path(settings.resolved_base_model)
    return path.name if path.is_dir() else settings.resolved_base_model


def _unique_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def _vllm_engine(model: str, settings: GatewaySettings) -> EngineClient:
    from gateway.engine.vllm_client import VLLMEngineClient

    return VLLMEngineClient(model, settings)


async def _build_services(
    settings: Settings, gateway_settings: GatewaySettings, engine_factory: EngineFactory
) -> Services:
    db = make_engine(settings.resolved_database_url)
    await asyncio.to_thread(create_tables, db)
    model = settings.resolved_base_model
    adapter_settings = AdapterSettings()
    store = make_store(adapter_settings.artifact_store, settings.data_dir)
    engine = engine_factory(model, gateway_settings)
    tokenizer = await asyncio.to_thread(PromptTokenizer, model)
    base = await asyncio.to_thread(BaseModelSpec.load, model)
    router = ModelRouter(
        base_model_name=served_model_name(settings, gateway_settings),
        base_fingerprint=base.fingerprint,
        db=db,
        store=store,
        engine=engine,
    )
    await router.refresh()

    def insert_batch(records: Sequence[dict[str, Any]]) -> None:
        insert_logs_idempotent(engine=db, records=records)

    drain = LogDrain(
        Spool(settings.data_dir / "spool", fsync=gateway_settings.log_spool_fsync),
        insert_batch,
        batch_size=gateway_settings.log_batch_size,
        interval_s=gateway_settings.log_flush_interval_s,
        retry_max_s=gateway_settings.log_retry_max_s,
    )
    admission = AdmissionController(gateway_settings.max_queued_requests, retry_after_s=gateway_settings.retry_after_s)
    metrics = GatewayMetrics(
        GaugeSources(
            spool_backlog_bytes=lambda: drain.spool.backlog_bytes,
            drain_failures=lambda: drain.failures,
            sequences_in_flight=lambda: admission.in_flight,
            spool_alert_bytes=MonitoringSettings().spool_alert_bytes,
            rows_dropped=lambda: drain.dropped,
        )
    )

    def log(row: dict[str, Any]) -> None:
        drain.record(row)  # durable first: the metric must never count a row the log lacks
        metrics.observe(row)

    generation = GenerationService(engine=engine, admission=admission, tracker=router, log=log)
    return Services(
        settings=settings,
        gateway_settings=gateway_settings,
        auth=AuthService(
            db=db,
            admin_key=settings.resolve_admin_key(),
            ttl_s=gateway_settings.auth_cache_ttl_s,
            stale_s=gateway_settings.auth_cache_stale_s,
        ),
        db=db,
        store=store,
        engine=engine,
        admission=admission,
        router=router,
        drain=drain,
        metrics=metrics,
        chat=ChatService(generation=generation, router=router, tokenizer=tokenizer),
        completions=CompletionService(generation=generation, router=router, tokenizer=tokenizer),
        feedback=FeedbackService(db=db, drain=drain),
        traffic=TrafficLogService(db=db, drain=drain),
        registry=RegistryService(
            db=db,
            store=store,
            router=router,
            base=base,
            limits=gateway_settings.adapter_limits(adapter_settings),
            scratch_dir=settings.data_dir / "scratch",
            engine_ready=lambda: engine.is_ready,
        ),
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    services = await _build_services(app.state.settings, app.state.gateway_settings, app.state.engine_factory)
    app.state.services = services
    services.drain.start()  # replays whatever a previous process left in the spool
    services.router.start_watching(services.gateway_settings.registry_poll_interval_s)

    # The engine loads in the background: /health answers at once, /ready once it is loaded.
    async def start_engine() -> None:
        started = time.perf_counter()
        await services.engine.start()
        await services.router.on_engine_ready()
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
        await services.router.stop()
        await services.drain.stop()
        await services.engine.shutdown()
        services.metrics.shutdown()
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
    settings: Settings | None = None,
    gateway_settings: GatewaySettings | None = None,
    *,
    engine_factory: EngineFactory = _vllm_engine,
) -> FastAPI:
    app = FastAPI(
        title="Switchyard",
        version=__version__,
        summary="OpenAI-compatible gateway serving many LoRA adapters on one vLLM base model.",
        lifespan=lifespan,
        generate_unique_id_function=_unique_id,
    )
    app.state.settings = settings or Settings()
    app.state.gateway_settings = gateway_settings or GatewaySettings()
    app.state.engine_factory = engine_factory
    register_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    for module in (
        health,
        metrics_router,
        registry_router,
        chat_router,
        completions_router,
        models_router,
        feedback_router,
        keys_router,
        requests_router,
    ):
        app.include_router(module.router)
    _without_fastapi_422(app)
    return app

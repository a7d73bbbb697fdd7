"""Request spans through the real app (routing, registry, traffic log, middleware) with a scripted
engine, exported to OpenTelemetry's in-memory exporter: GenAI attributes, streams, errors and
the caller's trace context."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.app import create_app
from gateway.exceptions import EngineUnavailable
from monitoring.tracing import DRIFT_SCOPE, Tracing, build_tracing, drift_span, set_drift_result
from switchyard.config import MonitoringSettings, Settings
from switchyard.db import make_engine
from switchyard.schema import create_all_tables
from tests.utils.adapters import good_adapter
from tests.utils.scripted_engine import WORDS, ScriptedEngine

ADMIN_KEY = "test-admin-key-0123456789"
MESSAGES = [{"role": "user", "content": "hi"}]


class App:
    def __init__(self, http: TestClient, engine: ScriptedEngine, exporter: InMemorySpanExporter, key: str) -> None:
        self.http = http
        self.engine = engine
        self.exporter = exporter
        self.admin = openai.OpenAI(base_url="http://testserver/v1", api_key=ADMIN_KEY, http_client=http, max_retries=0)
        self.tenant = openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0)

    def spans(self) -> list[ReadableSpan]:
        """Spans ended so far, oldest first; the exporter is emptied."""
        tracing: Tracing = self.http.app.state.services.tracing  # type: ignore[attr-defined]
        assert tracing.provider is not None
        tracing.provider.force_flush()
        spans = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return spans

    def only_span(self) -> ReadableSpan:
        spans = self.spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]


@pytest.fixture(scope="module")
def app(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    root = tmp_path_factory.mktemp("tracing")
    settings = Settings(
        _env_file=None,
        data_dir=root,
        base_model=str(demo_model),
        admin_key=ADMIN_KEY,
        registry={"import_roots": [str(root)]},
    )
    create_all_tables(make_engine(settings.resolved_database_url))
    engine, exporter = ScriptedEngine(delay_s=0.05), InMemorySpanExporter()
    application = create_app(settings, engine_factory=lambda *_: engine, span_exporter=exporter)
    with TestClient(application, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        folder = good_adapter(demo_model, root / "bot-v1")
        created = http.post("/admin/adapters/bot/versions", json={"source": str(folder), "tenant": "acme"})
        assert created.status_code == 201, created.text
        assert http.post("/admin/adapters/bot/promote", json={"version": 1}).status_code == 200
        key = http.post("/admin/keys", json={"name": "acme", "tenant": "acme", "allowed_adapters": ["*"]})
        assert key.status_code == 201, key.text
        yield App(http, engine, exporter, key.json()["key"])


@pytest.fixture(autouse=True)
def fresh(app: App) -> Iterator[None]:
    app.spans()
    yield
    app.engine.fail = app.engine.fail_after_first = None


def test_a_request_span_follows_the_genai_conventions(app: App) -> None:
    completion = app.tenant.chat.completions.create(
        model="bot", messages=MESSAGES, max_tokens=3, temperature=0.5, top_p=0.9, seed=7
    )
    span = app.only_span()
    assert span.name == "chat bot"
    assert span.kind == SpanKind.SERVER
    assert span.status.status_code == StatusCode.UNSET
    assert span.instrumentation_scope is not None and span.instrumentation_scope.name == "switchyard.gateway"
    assert span.resource.attributes["service.name"] == "switchyard"
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "vllm",
        "gen_ai.system": "vllm",
        "gen_ai.request.model": "bot",
        "gen_ai.request.stream": False,
        "gen_ai.request.max_tokens": 3,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.seed": 7,
        "gen_ai.response.model": "bot@1",
        "gen_ai.response.id": completion.id,
        "gen_ai.response.finish_reasons": ("length",),
        "gen_ai.usage.input_tokens": completion.usage.prompt_tokens,  # type: ignore[union-attr]
        "gen_ai.usage.output_tokens": 3,
        "switchyard.adapter": "bot",
        "switchyard.adapter_version": 1,
        "switchyard.tenant": "acme",
        "switchyard.request_id": completion.id,
        "http.response.status_code": 200,
    }


def test_the_base_model_and_the_completions_endpoint(app: App) -> None:
    app.admin.completions.create(model="demo-base", prompt="hi", n=2)
    span = app.only_span()
    attributes = span.attributes or {}
    assert span.name == "text_completion demo-base"
    assert attributes["gen_ai.response.model"] == "demo-base"
    assert attributes["gen_ai.request.choice.count"] == 2
    assert attributes["gen_ai.response.finish_reasons"] == ("stop", "stop")
    assert attributes["gen_ai.usage.output_tokens"] == 2 * len(WORDS)
    assert "switchyard.adapter" not in attributes and "switchyard.tenant" not in attributes


def test_a_stream_span_ends_with_the_stream(app: App) -> None:
    stream = app.tenant.chat.completions.create(
        model="bot", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(WORDS)
    span = app.only_span()
    attributes = span.attributes or {}
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.response.model"] == "bot@1"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.output_tokens"] == len(WORDS) == chunks[-1].usage.completion_tokens  # type: ignore[union-attr]
    assert 0 <= attributes["gen_ai.response.time_to_first_chunk"] < 0.05 * (len(WORDS) - 1)
    # The handler returned at the first delta; the span lasted until the engine's last one.
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time >= app.engine.last_output_ns
    assert span.end_time - span.start_time >= 0.05 * (len(WORDS) - 1) * 1e9


def test_an_engine_failure_is_an_error_span(app: App) -> None:
    app.engine.fail = EngineUnavailable("The model engine failed while generating.")
    with pytest.raises(openai.InternalServerError):
        app.tenant.chat.completions.create(model="bot", messages=MESSAGES)
    span = app.only_span()
    attributes = span.attributes or {}
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "engine_unavailable"  # the code, never the message
    assert attributes["error.type"] == "engine_unavailable"
    assert attributes["http.response.status_code"] == 503
    assert attributes["gen_ai.response.model"] == "bot@1"  # routed before the engine failed
    assert attributes["gen_ai.usage.output_tokens"] == 0  # the prompt reached the engine, no answer came


def test_a_failure_inside_a_stream_is_an_error_span(app: App) -> None:
    app.engine.fail_after_first = EngineUnavailable("The model engine failed while generating.")
    with pytest.raises(openai.APIError):
        list(app.tenant.chat.completions.create(model="bot", messages=MESSAGES, stream=True))
    span = app.only_span()
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "engine_unavailable"


def test_a_client_error_names_its_type_without_failing_the_span(app: App) -> None:
    with pytest.raises(openai.NotFoundError):
        app.tenant.chat.completions.create(model="no-such-bot", messages=MESSAGES)
    span = app.only_span()
    attributes = span.attributes or {}
    assert span.name == "chat no-such-bot"
    assert span.status.status_code == StatusCode.UNSET  # a 4xx is the caller's, as for HTTP server spans
    assert attributes["error.type"] == "model_not_found"
    assert attributes["http.response.status_code"] == 404
    assert "gen_ai.response.model" not in attributes and "gen_ai.response.id" not in attributes


def test_the_callers_traceparent_is_the_parent(app: App) -> None:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01", "tracestate": "vendor=x"}
    app.tenant.chat.completions.create(model="bot", messages=MESSAGES, max_tokens=1, extra_headers=headers)
    app.tenant.chat.completions.create(model="bot", messages=MESSAGES, max_tokens=1)
    continued, fresh = app.spans()
    assert continued.context is not None and fresh.context is not None
    assert continued.context.trace_id == int(trace_id, 16)
    assert continued.parent is not None and continued.parent.is_remote
    assert continued.parent.span_id == int(parent_id, 16)
    assert continued.context.trace_state.get("vendor") == "x"
    assert fresh.parent is None and fresh.context.trace_id != int(trace_id, 16)


def test_a_caller_that_does_not_sample_is_followed(app: App) -> None:
    headers = {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"}
    app.tenant.chat.completions.create(model="bot", messages=MESSAGES, max_tokens=1, extra_headers=headers)
    assert app.spans() == []


def test_no_collector_means_no_provider() -> None:
    tracing = build_tracing(MonitoringSettings())
    assert tracing.provider is None
    with tracing.tracer(DRIFT_SCOPE).start_as_current_span("nothing") as span:
        assert not span.is_recording()
    tracing.shutdown()


def test_a_collector_gets_otlp_over_http_and_the_settings() -> None:
    settings = MonitoringSettings(
        otlp_endpoint="http://127.0.0.1:4318/", service_name="switchyard-eu", trace_sample_ratio=0.25
    )
    tracing = build_tracing(settings)
    provider = tracing.provider
    assert provider is not None
    processors: Any = provider._active_span_processor._span_processors  # no public accessor
    (processor,) = processors
    assert isinstance(processor, BatchSpanProcessor)
    exporter = processor._batch_processor._exporter
    assert isinstance(exporter, OTLPSpanExporter)
    assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
    assert provider.resource.attributes["service.name"] == "switchyard-eu"
    assert "TraceIdRatioBased{0.25}" in provider.sampler.get_description()
    tracing.shutdown()  # nothing was recorded, so nothing is sent


def test_the_drift_helper() -> None:
    exporter = InMemorySpanExporter()
    tracing = build_tracing(MonitoringSettings(), exporter=exporter)
    with drift_span(tracing.tracer(DRIFT_SCOPE), "bot") as span:
        set_drift_result(span, status="ok", drifted=True, drift_share=0.5, reference_rows=200, current_rows=150)
    with pytest.raises(ValueError), drift_span(tracing.tracer(DRIFT_SCOPE), "bot"):
        raise ValueError("After pruning, no terms remain")
    tracing.shutdown()
    ok, failed = exporter.get_finished_spans()
    assert ok.name == "drift bot" and dict(ok.attributes or {}) == {
        "switchyard.adapter": "bot",
        "switchyard.drift.status": "ok",
        "switchyard.drift.drifted": True,
        "switchyard.drift.share": 0.5,
        "switchyard.drift.reference_rows": 200,
        "switchyard.drift.current_rows": 150,
    }
    assert failed.status.status_code == StatusCode.ERROR

"""OpenTelemetry traces: one ``TracerProvider`` per app, OTLP export when a collector is named,
and the span of each generation request, named and filled as the GenAI semantic conventions say.

A request's span is a ``SERVER`` span (vLLM's own server does the same): it is the server side
of the caller's call, so a W3C ``traceparent`` from the client makes it a child of the caller's
span (the gateway's middleware makes the extracted context current). It starts when the request
is taken up and ends when its log row is written: after the last byte of a stream.

The ``gen_ai.*`` names come from ``opentelemetry-semantic-conventions``, which marks them as
moved to the GenAI conventions' own repository; the names themselves are unchanged there.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

from switchyard import __version__
from switchyard.config import MonitoringSettings

PROVIDER = "vllm"
"""``gen_ai.provider.name`` (and the older ``gen_ai.system``): the engine that generated."""
GATEWAY_SCOPE = "switchyard.gateway"
TUNER_SCOPE = "switchyard.tuner"
DRIFT_SCOPE = "switchyard.drift"

ADAPTER = "switchyard.adapter"
ADAPTER_VERSION = "switchyard.adapter_version"
TENANT = "switchyard.tenant"
REQUEST_ID = "switchyard.request_id"
"""The traffic-log id of the request (``chatcmpl-`` or ``cmpl-`` and its ``x-request-id``)."""
DRIFT_STATUS = "switchyard.drift.status"
DRIFTED = "switchyard.drift.drifted"
DRIFT_SHARE = "switchyard.drift.share"
DRIFT_REFERENCE_ROWS = "switchyard.drift.reference_rows"
DRIFT_CURRENT_ROWS = "switchyard.drift.current_rows"

OPERATIONS = {
    "chat.completions": gen_ai.GenAiOperationNameValues.CHAT.value,
    "completions": gen_ai.GenAiOperationNameValues.TEXT_COMPLETION.value,
}
# Request knobs as span attributes, first match wins (``max_completion_tokens`` supersedes
# ``max_tokens`` in OpenAI's API). Only numbers: ``stop`` and the messages are content.
_REQUEST_KNOBS = (
    ("max_completion_tokens", gen_ai.GEN_AI_REQUEST_MAX_TOKENS, int),
    ("max_tokens", gen_ai.GEN_AI_REQUEST_MAX_TOKENS, int),
    ("temperature", gen_ai.GEN_AI_REQUEST_TEMPERATURE, float),
    ("top_p", gen_ai.GEN_AI_REQUEST_TOP_P, float),
    ("presence_penalty", gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY, float),
    ("frequency_penalty", gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY, float),
    ("seed", gen_ai.GEN_AI_REQUEST_SEED, int),
)
MAX_NAME_CHARS = 256
NOOP_TRACER: Tracer = trace.NoOpTracer()


class GenerationTracer:
    """Starts and ends the span of each generation request, from what its log row holds."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def start(self, *, endpoint: str, model: str, params: Mapping[str, Any], stream: bool, request_id: str) -> Span:
        """The request's span, a child of the current context (the caller's, from ``traceparent``)."""
        operation = OPERATIONS.get(endpoint, endpoint)
        attributes: dict[str, Any] = {
            gen_ai.GEN_AI_OPERATION_NAME: operation,
            gen_ai.GEN_AI_PROVIDER_NAME: PROVIDER,
            gen_ai.GEN_AI_SYSTEM: PROVIDER,
            gen_ai.GEN_AI_REQUEST_MODEL: model,
            gen_ai.GEN_AI_REQUEST_STREAM: stream,
            REQUEST_ID: request_id,
        }
        for name, attribute, kind in _REQUEST_KNOBS:
            value = params.get(name)
            if attribute not in attributes and isinstance(value, int | float) and not isinstance(value, bool):
                attributes[attribute] = kind(value)
        choices = params.get("n")
        if isinstance(choices, int) and choices != 1:
            attributes[gen_ai.GEN_AI_REQUEST_CHOICE_COUNT] = choices
        name = f"{operation} {model}"[:MAX_NAME_CHARS]
        return self._tracer.start_span(name, kind=SpanKind.SERVER, attributes=attributes)

    def finish(self, span: Span, row: Mapping[str, Any], *, response_model: str | None, error_type: str | None) -> None:
        """End ``span`` with the outcome in ``row`` (a traffic-log row). ``response_model`` is the
        exact model that answered (``alias@version``), None when the request was never routed.

        Server-span rules (as for HTTP): a 5xx is an error of this span; a 4xx is the caller's, so
        it carries ``error.type`` and leaves the status unset."""
        status = int(row["status"])
        attributes: dict[str, Any] = {HTTP_RESPONSE_STATUS_CODE: status}
        if response_model is not None:
            attributes[gen_ai.GEN_AI_RESPONSE_MODEL] = response_model
            attributes[gen_ai.GEN_AI_RESPONSE_ID] = row["id"]
        if row.get("adapter") is not None:
            attributes[ADAPTER] = row["adapter"]
            attributes[ADAPTER_VERSION] = row["adapter_version"]
        if row.get("tenant") is not None:
            attributes[TENANT] = row["tenant"]
        if row.get("prompt_tokens") is not None:
            attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] = row["prompt_tokens"]
            attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] = row.get("completion_tokens") or 0
        reasons = [c["finish_reason"] for c in row.get("choices") or [] if c.get("finish_reason")]
        if not reasons and row.get("finish_reason"):
            reasons = [row["finish_reason"]]
        if reasons:
            attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
        if row.get("stream") and row.get("ttft_ms") is not None:
            attributes[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = row["ttft_ms"] / 1000
        if status != 200:
            attributes[ERROR_TYPE] = error_type or str(status)
        span.set_attributes(attributes)
        if status >= 500:
            # The error code, not the message: messages may quote the request's content.
            span.set_status(StatusCode.ERROR, attributes[ERROR_TYPE])
        span.end()


class Tracing:
    """The app's tracer provider (None: tracing is off and every tracer is a no-op)."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self.provider = provider
        self.generation = GenerationTracer(self.tracer(GATEWAY_SCOPE))

    def tracer(self, scope: str) -> Tracer:
        """A tracer for one package's spans (``TUNER_SCOPE``, ``DRIFT_SCOPE``, …)."""
        if self.provider is None:
            return NOOP_TRACER
        return self.provider.get_tracer(scope, __version__)

    def shutdown(self) -> None:
        """Export the spans still queued (bounded by the exporter's timeout) and stop."""
        if self.provider is not None:
            self.provider.shutdown()


def build_tracing(settings: MonitoringSettings, *, exporter: SpanExporter | None = None) -> Tracing:
    """Tracing for one app: spans go to ``exporter`` (tests pass an in-memory one), else to the
    OTLP collector of ``settings.otlp_endpoint``, else nowhere (no provider at all)."""
    if exporter is None and settings.otlp_endpoint:
        exporter = OTLPSpanExporter(
            endpoint=f"{settings.otlp_endpoint.rstrip('/')}/v1/traces", timeout=settings.otlp_timeout_s
        )
    if exporter is None:
        return Tracing(None)
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.service_name, SERVICE_VERSION: __version__}),
        # A caller's traceparent continues its trace, but its "sampled" flag cannot force
        # recording: any client could otherwise flood the collector. Its "not sampled" is kept.
        sampler=ParentBased(
            TraceIdRatioBased(settings.trace_sample_ratio),
            remote_parent_sampled=TraceIdRatioBased(settings.trace_sample_ratio),
        ),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider)


def drift_span(tracer: Tracer, adapter: str) -> AbstractContextManager[Span]:
    """The span of one drift run of ``adapter``, current inside the ``with`` block (work handed to
    ``asyncio.to_thread`` keeps it as parent). An exception ends it as an error."""
    return tracer.start_as_current_span(f"drift {adapter}"[:MAX_NAME_CHARS], attributes={ADAPTER: adapter})


def set_drift_result(
    span: Span,
    *,
    status: str,
    drifted: bool,
    drift_share: float | None,
    reference_rows: int,
    current_rows: int,
) -> None:
    """Record a drift run's verdict on its span (``status``: ``ok`` or ``insufficient_data``)."""
    attributes: dict[str, Any] = {
        DRIFT_STATUS: status,
        DRIFTED: drifted,
        DRIFT_REFERENCE_ROWS: reference_rows,
        DRIFT_CURRENT_ROWS: current_rows,
    }
    if drift_share is not None:
        attributes[DRIFT_SHARE] = drift_share
    span.set_attributes(attributes)

"""Gateway metrics through OpenTelemetry, exposed in Prometheus' text format.

Each gateway owns its ``MeterProvider`` and a private Prometheus registry, so several apps in
one process (tests, embedded use) never collide; prometheus_client's global registry, where
vLLM's stat logger keeps the engine's ``vllm:*`` metrics, is only read, and rendered after ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from monitoring.sources import CachedReading

PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class LoadedAdapter:
    """An adapter version loaded into the engine."""

    adapter: str
    version: int
    pinned: bool


@dataclass(frozen=True)
class GaugeSources:
    """Live values read at scrape time. A :class:`~monitoring.sources.CachedReading` (a database
    read) is refreshed on a worker thread before each scrape; the others must be cheap."""

    spool_backlog_bytes: Callable[[], int]
    drain_failures: Callable[[], int]
    sequences_in_flight: Callable[[], int]
    spool_alert_bytes: int
    rows_dropped: Callable[[], int] = lambda: 0
    rows_dead_lettered: Callable[[], int] = lambda: 0
    registry_lagging_versions: Callable[[], int] = lambda: 0
    engine_restarts: Callable[[], int] = lambda: 0
    max_sequences: int | None = None
    """The admission limit (``max_queued_requests``): past it requests get 429."""
    requests_waiting_for_slot: Callable[[], int] = lambda: 0
    loaded_adapters: Callable[[], Sequence[LoadedAdapter]] = tuple
    training_jobs: Callable[[], Mapping[str, int]] = dict
    """Fine-tuning jobs by status."""
    drift_share: Callable[[], Mapping[str, float]] = dict
    """Per adapter: the share of columns that drifted in its latest drift result that compared any."""
    drift_detected: Callable[[], Mapping[str, bool]] = dict
    """Per adapter: whether its latest drift result is drifted."""
    drift_alerts: Callable[[], Mapping[str, int]] = dict
    """Per adapter: drifted verdicts this process raised (a counter: alert on its increase)."""


def _gauge(read: Callable[[], float]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(read())

    return callback


def _labelled(
    read: Callable[[], Iterable[tuple[float, dict[str, str]]]],
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, labels) for value, labels in read()]

    return callback


class GatewayMetrics:
    def __init__(self, gauges: GaugeSources, *, also_render: Sequence[CollectorRegistry] = ()) -> None:
        """``also_render``: registries exposed after Switchyard's own, e.g. prometheus_client's
        global ``REGISTRY``, where vLLM's stat logger keeps the engine's ``vllm:*`` metrics."""
        self._also_render = tuple(also_render)
        from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

        self.registry = CollectorRegistry(auto_describe=True)
        reader = PrometheusMetricReader(registry=self.registry, disable_target_info=True, scope_info_enabled=False)
        latency_view = View(
            instrument_name="switchyard_*seconds",
            aggregation=ExplicitBucketHistogramAggregation(boundaries=LATENCY_BUCKETS_S),
        )
        self.provider = MeterProvider(metric_readers=[reader], views=[latency_view])
        meter = self.provider.get_meter("switchyard.gateway")
        self._requests = meter.create_counter(
            "switchyard_requests", description="Generation requests by model, adapter version and status"
        )
        self._tokens = meter.create_counter("switchyard_tokens", description="Prompt and completion tokens")
        self._latency = meter.create_histogram(
            "switchyard_request_seconds", unit="s", description="Request latency, until the last byte"
        )
        self._ttft = meter.create_histogram(
            "switchyard_time_to_first_token_seconds", unit="s", description="Time to first token"
        )
        alert = gauges.spool_alert_bytes
        for name, read, description in (
            (
                "switchyard_log_spool_backlog_bytes",
                gauges.spool_backlog_bytes,
                "Traffic-log bytes spooled but not yet in the database",
            ),
            (
                "switchyard_log_spool_alert",
                lambda: int(gauges.spool_backlog_bytes() > alert),
                "1 while the traffic-log backlog is over its alert threshold",
            ),
            (
                "switchyard_log_drain_consecutive_failures",
                gauges.drain_failures,
                "Failed database writes in a row (0 when the database is healthy)",
            ),
            (
                "switchyard_log_rows_dropped",
                gauges.rows_dropped,
                "Traffic-log rows lost since start: the spool failed and the memory buffer was full",
            ),
            (
                "switchyard_log_rows_dead_lettered",
                gauges.rows_dead_lettered,
                "Traffic-log rows the database refused since start, kept in the spool's dead-letter file",
            ),
            ("switchyard_sequences_in_flight", gauges.sequences_in_flight, "Sequences admitted to the engine"),
            (
                "switchyard_registry_lagging_versions",
                gauges.registry_lagging_versions,
                "Adapter versions the registry routes or pins that this replica does not serve yet",
            ),
            ("switchyard_engine_restarts", gauges.engine_restarts, "Times the engine died and was restarted"),
            (
                "switchyard_requests_waiting_for_slot",
                gauges.requests_waiting_for_slot,
                "Admitted requests waiting for a free LoRA slot (more adapters busy than the engine holds)",
            ),
            (
                "switchyard_adapters_loaded",
                lambda: len(gauges.loaded_adapters()),
                "Adapter versions loaded into the engine (unpinned ones may wait in its CPU cache until used)",
            ),
        ):
            meter.create_observable_gauge(name, callbacks=[_gauge(read)], description=description)
        if gauges.max_sequences is not None:
            limit = gauges.max_sequences
            meter.create_observable_gauge(
                "switchyard_sequences_limit",
                callbacks=[_gauge(lambda: limit)],
                description="Sequences admitted at most (switchyard_sequences_in_flight above it gets 429)",
            )
        self._gauges = gauges
        for name, read_labelled, description in (
            (
                "switchyard_adapter_loaded",
                lambda: [
                    (1, {"adapter": a.adapter, "adapter_version": str(a.version), "pinned": str(a.pinned).lower()})
                    for a in gauges.loaded_adapters()
                ],
                "1 for each adapter version loaded into the engine; pinned ones never leave their slot",
            ),
            (
                "switchyard_training_jobs",
                lambda: [(count, {"status": status}) for status, count in gauges.training_jobs().items()],
                "Fine-tuning jobs by status",
            ),
            (
                "switchyard_drift_share",
                lambda: [(share, {"adapter": adapter}) for adapter, share in gauges.drift_share().items()],
                "Share of the monitored columns that drifted in the adapter's latest drift result",
            ),
            (
                "switchyard_drift_detected",
                lambda: [(int(drifted), {"adapter": adapter}) for adapter, drifted in gauges.drift_detected().items()],
                "1 while the adapter's latest drift result is drifted",
            ),
        ):
            meter.create_observable_gauge(name, callbacks=[_labelled(read_labelled)], description=description)
        meter.create_observable_counter(
            "switchyard_drift_alerts",
            callbacks=[_labelled(lambda: [(count, {"adapter": a}) for a, count in gauges.drift_alerts().items()])],
            description="Drifted verdicts raised (log line, webhook, refresh request), per adapter",
        )

    def observe(self, row: dict[str, Any]) -> None:
        """Count one finished request from its traffic-log row."""
        version = row.get("adapter_version")
        attributes = {
            "endpoint": row["endpoint"],
            "adapter": row.get("adapter") or "",
            "adapter_version": "" if version is None else str(version),
            "status": str(row["status"]),
        }
        self._requests.add(1, attributes)
        if row.get("prompt_tokens") is not None:
            self._tokens.add(row["prompt_tokens"], {**attributes, "kind": "prompt"})
            self._tokens.add(row.get("completion_tokens") or 0, {**attributes, "kind": "completion"})
        if row.get("latency_ms") is not None:
            self._latency.record(row["latency_ms"] / 1000, attributes)
        if row.get("ttft_ms") is not None:
            self._ttft.record(row["ttft_ms"] / 1000, attributes)

    async def scrape(self) -> bytes:
        """Refresh the sources that read the database (off the event loop), then render."""
        sources = (self._gauges.training_jobs, self._gauges.drift_share, self._gauges.drift_detected)
        slow = [source for source in sources if isinstance(source, CachedReading)]
        await asyncio.gather(*(source.refresh() for source in slow))
        return self.render()

    def render(self) -> bytes:
        return b"".join(generate_latest(registry) for registry in (self.registry, *self._also_render))

    def shutdown(self) -> None:
        self.provider.shutdown()

"""Observability: drift checks with Evidently, OpenTelemetry traces, and metrics with Prometheus exposition."""

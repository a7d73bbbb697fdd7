"""Observability: OpenTelemetry metrics with Prometheus exposition (drift reports come later)."""

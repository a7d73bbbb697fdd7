"""Gateway metrics: counted from log rows, gauges read at scrape time, one registry per app."""

from __future__ import annotations

from monitoring.metrics import GatewayMetrics, GaugeSources


def make(backlog: list[int]) -> GatewayMetrics:
    return GatewayMetrics(
        GaugeSources(
            spool_backlog_bytes=lambda: backlog[0],
            drain_failures=lambda: 2,
            sequences_in_flight=lambda: 5,
            spool_alert_bytes=100,
            rows_dropped=lambda: 7,
        )
    )


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

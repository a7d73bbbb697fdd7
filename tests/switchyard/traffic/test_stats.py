"""Per-adapter traffic over time (what the dashboard plots), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from switchyard.traffic.crud import create_feedback, insert_logs_idempotent
from switchyard.traffic.models import FeedbackCreate
from switchyard.traffic.stats import adapter_traffic

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def row(
    i: int, *, minute: int, status: int = 200, latency: float = 10.0, adapter: str = "bot", version: int = 1
) -> dict:
    return {
        "id": f"chatcmpl-{adapter}-{i}",
        "created_at": (T0 + timedelta(minutes=minute, seconds=i % 50)).isoformat(),
        "endpoint": "chat.completions",
        "model": adapter,
        "adapter": adapter,
        "adapter_version": version,
        "params": {},
        "status": status,
        "latency_ms": latency,
        "ttft_ms": latency / 2,
        "prompt_tokens": 5,
        "completion_tokens": 3,
    }


def test_buckets_count_requests_errors_latency_tokens_and_feedback(db: Engine) -> None:
    rows = [row(i, minute=0, latency=float(i + 1)) for i in range(20)]
    rows += [row(100 + i, minute=2, status=500 if i < 2 else 200, version=2) for i in range(4)]
    rows += [row(200, minute=1, adapter="other")]
    insert_logs_idempotent(engine=db, records=rows)
    with Session(db) as session:
        for score, request_id in ((1.0, "chatcmpl-bot-0"), (-1.0, "chatcmpl-bot-1"), (0.5, "chatcmpl-bot-1")):
            create_feedback(
                session=session,
                feedback_in=FeedbackCreate(completion_id=request_id, score=score),
                key_id=None,
                tenant=None,
                reviewer=False,
            )
        stats = adapter_traffic(
            session=session, adapter="bot", since=T0, until=T0 + timedelta(minutes=5), bucket_s=60, max_rows=1000
        )
    assert stats.rows == 24 and not stats.truncated
    first, second = stats.buckets
    assert (first.start, first.requests, first.errors) == (T0, 20, 0)
    assert (first.p50_latency_ms, first.p95_latency_ms, first.mean_ttft_ms) == (10.0, 19.0, 5.25)
    assert (first.prompt_tokens, first.completion_tokens) == (100, 60)
    assert first.feedback_count == 3 and first.mean_feedback == 0.5 / 3
    assert first.versions == {"bot@1": 20}
    assert (second.start, second.requests, second.errors, second.versions) == (
        T0 + timedelta(minutes=2),
        4,
        2,
        {"bot@2": 4},
    )
    assert second.mean_feedback is None


def test_the_window_is_bounded_newest_first(db: Engine) -> None:
    insert_logs_idempotent(engine=db, records=[row(i, minute=i) for i in range(10)])
    with Session(db) as session:
        stats = adapter_traffic(
            session=session, adapter="bot", since=T0, until=T0 + timedelta(hours=1), bucket_s=60, max_rows=4
        )
        outside = adapter_traffic(
            session=session, adapter="bot", since=T0 - timedelta(hours=2), until=T0, bucket_s=60, max_rows=4
        )
    assert stats.truncated and stats.rows == 4
    assert [b.start for b in stats.buckets] == [T0 + timedelta(minutes=m) for m in (6, 7, 8, 9)]
    assert outside.rows == 0 and outside.buckets == []

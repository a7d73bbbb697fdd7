"""Traffic over time, per adapter: what the ops dashboard plots.

Buckets are computed here rather than in SQL: percentiles and time bucketing have no portable
SQL between SQLite and PostgreSQL. The window is bounded (``max_rows``, newest first), so one
read never scans an unbounded log; the result says when it was cut.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import Session, col, select

from switchyard.traffic.models import Feedback, RequestLog


class TrafficBucket(BaseModel):
    start: datetime
    requests: int
    errors: int
    """Responses with a status of 400 or more (including 499: the client went away)."""
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    mean_ttft_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    feedback_count: int
    mean_feedback: float | None
    versions: dict[str, int]
    """Requests per serving version (``alias@N``)."""


class TrafficStats(BaseModel):
    adapter: str
    since: datetime
    until: datetime
    bucket_s: int
    rows: int
    truncated: bool
    """More rows than ``max_rows`` fell in the window: the oldest buckets are incomplete."""
    buckets: list[TrafficBucket]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def adapter_traffic(
    *, session: Session, adapter: str, since: datetime, until: datetime, bucket_s: int, max_rows: int
) -> TrafficStats:
    """``adapter``'s logged requests in ``[since, until)``, in buckets of ``bucket_s`` seconds."""
    since, until = _aware(since), _aware(until)
    rows = session.exec(
        select(
            RequestLog.id,
            RequestLog.created_at,
            RequestLog.status,
            RequestLog.latency_ms,
            RequestLog.ttft_ms,
            RequestLog.prompt_tokens,
            RequestLog.completion_tokens,
            RequestLog.adapter_version,
        )
        .where(RequestLog.adapter == adapter, RequestLog.created_at >= since, RequestLog.created_at < until)
        .order_by(col(RequestLog.created_at).desc())
        .limit(max_rows + 1)
    ).all()
    truncated = len(rows) > max_rows
    rows = rows[:max_rows]
    scores: dict[str, tuple[float, int]] = {}
    if rows:
        ids = [row.id for row in rows]
        for start in range(0, len(ids), 1000):  # bounded IN lists
            chunk = ids[start : start + 1000]
            for request_id, total, count in session.exec(
                select(Feedback.request_id, func.sum(Feedback.score), func.count())
                .where(col(Feedback.request_id).in_(chunk))
                .group_by(Feedback.request_id)
            ):
                scores[request_id] = (float(total), int(count))

    grouped: dict[int, list] = defaultdict(list)
    for row in rows:
        offset = (_aware(row.created_at) - since).total_seconds()
        grouped[int(offset // bucket_s)].append(row)
    buckets = []
    for index in sorted(grouped):
        members = grouped[index]
        latencies = [r.latency_ms for r in members if r.latency_ms is not None]
        ttfts = [r.ttft_ms for r in members if r.ttft_ms is not None]
        feedback = [scores[r.id] for r in members if r.id in scores]
        versions: dict[str, int] = defaultdict(int)
        for r in members:
            if r.adapter_version is not None:
                versions[f"{adapter}@{r.adapter_version}"] += 1
        feedback_count = sum(count for _, count in feedback)
        buckets.append(
            TrafficBucket(
                start=since + timedelta(seconds=index * bucket_s),
                requests=len(members),
                errors=sum(1 for r in members if r.status >= 400),
                p50_latency_ms=_percentile(latencies, 0.5),
                p95_latency_ms=_percentile(latencies, 0.95),
                mean_ttft_ms=_mean(ttfts),
                prompt_tokens=sum(r.prompt_tokens or 0 for r in members),
                completion_tokens=sum(r.completion_tokens or 0 for r in members),
                feedback_count=feedback_count,
                mean_feedback=sum(total for total, _ in feedback) / feedback_count if feedback_count else None,
                versions=dict(versions),
            )
        )
    return TrafficStats(
        adapter=adapter,
        since=since,
        until=until,
        bucket_s=bucket_s,
        rows=len(rows),
        truncated=truncated,
        buckets=buckets,
    )

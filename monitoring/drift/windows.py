"""What a drift check compares: the current window of an adapter's logged traffic, and its
reference (the training snapshot's requests, a pinned window, or the traffic just before).

Windows are chosen by request id first (one indexed query on the log), then sampled, and only
the sampled rows are read in full, so a window of a million requests costs a sample's worth of
JSON parsing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from adapters.models import Adapter
from adapters.registry import version_by_id
from monitoring.drift.columns import LOGGED, PROMPT, RESPONSE, empty_frame, with_descriptors
from monitoring.drift.models import ReferenceKind, TimeWindow, as_utc
from switchyard.traffic.models import Feedback, RequestLog
from tuner.manifests import get_manifest, latest_manifest
from tuner.snapshots import HOLDOUT_SPLIT, TRAIN_SPLIT, load_snapshot

ENDPOINTS = ("chat.completions", "completions")
CHUNK = 500
"""Ids per ``IN (...)`` query: well under SQLite's and PostgreSQL's parameter limits."""


@dataclass
class Side:
    """One side of a comparison, before sampling: the log rows it holds, by id, or (for a
    snapshot trained from uploaded files, which are not in the log) the snapshot's own rows."""

    ids: list[str] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    kind: ReferenceKind | None = None
    snapshot_id: str | None = None
    rows: list[dict[str, Any]] | None = None
    """Rows with a ``prompt`` and a ``response`` text only (the file snapshot's)."""

    @property
    def count(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.ids)


def _served(adapter: str) -> list[ColumnElement[bool]]:
    return [
        RequestLog.adapter == adapter,
        RequestLog.status == 200,
        col(RequestLog.endpoint).in_(ENDPOINTS),
    ]


def _side(rows: Sequence[tuple[str, datetime]], **fields: Any) -> Side:
    moments = [moment for _, moment in rows]
    return Side(
        ids=[request_id for request_id, _ in rows],
        start=as_utc(min(moments)) if moments else None,
        end=as_utc(max(moments)) if moments else None,
        **fields,
    )


def _newest(session: Session, conditions: list[ColumnElement[bool]], limit: int | None) -> list[tuple[str, datetime]]:
    query = (
        select(RequestLog.id, RequestLog.created_at)
        .where(*conditions)
        .order_by(col(RequestLog.created_at).desc(), col(RequestLog.id).desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())


def time_window(session: Session, adapter: str, window: TimeWindow) -> Side:
    """The adapter's served requests inside ``window``."""
    conditions = [
        *_served(adapter),
        col(RequestLog.created_at) >= as_utc(window.start),
        col(RequestLog.created_at) < as_utc(window.end),
    ]
    return _side(_newest(session, conditions, None))


def current_window(
    session: Session, adapter: str, *, rows: int, seconds: int | None, now: datetime | None = None
) -> Side:
    """The most recent traffic: the last ``seconds`` when given, else the last ``rows`` requests."""
    if seconds is not None:
        end = as_utc(now or datetime.now(UTC))
        return time_window(session, adapter, TimeWindow(end - timedelta(seconds=seconds), end + timedelta(seconds=1)))
    return _side(_newest(session, _served(adapter), rows))


def previous_window(session: Session, adapter: str, current: Side, *, rows: int, seconds: float | None) -> Side:
    """The traffic just before ``current`` (which must hold rows): as many requests, or the same
    span of time when ``seconds`` is given."""
    assert current.start is not None
    before = [*_served(adapter), col(RequestLog.created_at) < current.start]
    if seconds is not None:
        before.append(col(RequestLog.created_at) >= current.start - timedelta(seconds=seconds))
        return _side(_newest(session, before, None), kind=ReferenceKind.previous_window)
    return _side(_newest(session, before, rows), kind=ReferenceKind.previous_window)


def snapshot_reference(session: Session, adapter: Adapter, snapshot_root: Path) -> Side | None:
    """The requests behind the dataset snapshot the adapter's active version was trained on, or
    else behind its latest curated snapshot; None when it has neither. A snapshot of uploaded
    training files has no requests in the log: its own rows are the reference then."""
    version = version_by_id(session=session, version_id=adapter.active_version_id)
    snapshot_id = version.dataset_snapshot_id if version is not None else None
    manifest = (
        get_manifest(session=session, snapshot_id=snapshot_id)
        if snapshot_id is not None
        else latest_manifest(session=session, adapter=adapter.name, tenant=adapter.tenant)
    )
    if manifest is not None:
        return Side(
            ids=list(manifest.source_request_ids),
            start=as_utc(manifest.window_start) if manifest.window_start else None,
            end=as_utc(manifest.window_end),
            kind=ReferenceKind.snapshot,
            snapshot_id=manifest.snapshot_id,
        )
    if snapshot_id is None:
        return None
    folder = snapshot_root / adapter.name / snapshot_id
    if not folder.is_dir():
        return None
    splits = load_snapshot(folder)
    rows = [
        {PROMPT: _last_user_text(row["prompt"]), RESPONSE: _last_text(row["completion"])}
        for split in (TRAIN_SPLIT, HOLDOUT_SPLIT)
        if split in splits
        for row in splits[split]
    ]
    return Side(rows=rows, kind=ReferenceKind.snapshot, snapshot_id=snapshot_id)


# -- sampling and reading ------------------------------------------------------------------


def sample(items: Sequence[Any], size: int, *, seed: int) -> list[Any]:
    """``items`` when there are at most ``size``, else a random ``size`` of them (the same ones
    for the same items and seed), in their original order."""
    if len(items) <= size:
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), size))
    return [items[i] for i in chosen]


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        parts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "\n".join(parts) if parts else None
    return None


def _last_user_text(request: Any) -> str | None:
    """The last user message of a chat request, or a completion request's prompt."""
    if isinstance(request, str):
        return request
    if not isinstance(request, list):
        return None
    if request and all(isinstance(item, str) for item in request):  # a batch of completion prompts
        return "\n".join(request)
    for message in reversed(request):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message.get("content"))
    return None


def _last_text(messages: Any) -> str | None:
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        return _text(messages[-1].get("content"))
    return None


def read_frame(session: Session, side: Side, ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The compared columns of ``side``'s rows (of ``ids`` among them, when given), with the text
    descriptors. Requests missing from the log (deleted since) are left out."""
    if side.rows is not None:
        rows = side.rows if ids is None else [side.rows[int(i)] for i in ids]
        return with_descriptors(
            pd.DataFrame(rows, columns=[PROMPT, RESPONSE]).reindex(columns=[PROMPT, RESPONSE, *LOGGED])
        )
    wanted = side.ids if ids is None else ids
    records: list[dict[str, Any]] = []
    scores: dict[str, float] = {}
    logged_columns = [name for name in LOGGED if name != "feedback_score"]  # feedback is another table's
    names = ("id", PROMPT, RESPONSE, *logged_columns)
    for chunk in _chunks(wanted):
        logged = session.exec(
            select(
                RequestLog.id, RequestLog.request, RequestLog.output, *(getattr(RequestLog, n) for n in logged_columns)
            ).where(col(RequestLog.id).in_(chunk))
        ).all()
        for request_id, request, *rest in logged:
            records.append(dict(zip(names, (request_id, _last_user_text(request), *rest), strict=True)))
        rated = session.exec(
            select(Feedback.request_id, func.avg(Feedback.score))
            .where(col(Feedback.request_id).in_(chunk))
            .group_by(col(Feedback.request_id))
        ).all()
        scores.update({request_id: float(score) for request_id, score in rated})
    if not records:
        return empty_frame()
    frame = pd.DataFrame.from_records(records)
    frame["feedback_score"] = frame["id"].map(scores)
    return with_descriptors(frame.drop(columns="id"))


def sample_keys(side: Side, size: int, *, seed: int) -> tuple[list[str], bool]:
    """The keys of ``side``'s rows to read (ids, or row positions of a file snapshot), at most
    ``size`` of them, and whether that is a sample."""
    keys = side.ids if side.rows is None else [str(i) for i in range(len(side.rows))]
    chosen = sample(keys, size, seed=seed)
    return chosen, len(chosen) < len(keys)

"""Logged traffic and feedback for curation tests, written through the traffic log's own functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from switchyard.traffic.crud import create_feedback, insert_logs_idempotent
from switchyard.traffic.models import FeedbackCreate

T0 = datetime(2026, 1, 1, tzinfo=UTC)

BASE = "My order 4417 never arrived and the tracking page has not changed since Monday, what should I do?"


def near_copies(n: int) -> list[str]:
    """What people send when they retry: the same question with its case, spacing, punctuation or
    one detail changed."""
    edits = [
        lambda text, i: text,
        lambda text, i: text.upper(),
        lambda text, i: text.replace(" ", "  ").replace("?", " ??"),
        lambda text, i: text.replace("4417", f"44{i:02d}"),
        lambda text, i: text + [" Thanks!", " Please help.", " Any update?"][i % 3],
        lambda text, i: text.replace("arrived", "arived"),
    ]
    return [edits[i % len(edits)](BASE, i) for i in range(n)]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def chat_log(
    request_id: str,
    prompt: str | Sequence[dict[str, Any]],
    *,
    output: str | None = "served",
    adapter: str = "bot",
    tenant: str | None = None,
    status: int = 200,
    content: bool = True,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """A spooled record as the gateway writes it; ``content=False`` is a key that opted out of logging."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return {
        "id": request_id,
        "tenant": tenant,
        "created_at": (created_at or datetime.now(UTC)).isoformat(),
        "endpoint": "chat.completions",
        "model": adapter,
        "adapter": adapter,
        "request": messages if content else None,
        "output": output if content else None,
        "params": {},
        "status": status,
    }


@dataclass(frozen=True)
class Rating:
    request_id: str
    score: float
    correction: str | None = None
    reviewer: bool = True
    """The admin by default: its corrections may be trained on."""


def seed(engine: Engine, logs: Iterable[dict[str, Any]], ratings: Iterable[Rating] = ()) -> None:
    insert_logs_idempotent(engine=engine, records=list(logs))
    with Session(engine) as session:
        for rating in ratings:
            create_feedback(
                session=session,
                feedback_in=FeedbackCreate(
                    completion_id=rating.request_id, score=rating.score, corrected_completion=rating.correction
                ),
                key_id=None if rating.reviewer else 7,
                reviewer=rating.reviewer,
            )


def good(request_id: str, prompt: str | Sequence[dict[str, Any]], **log: Any) -> tuple[dict[str, Any], Rating]:
    """A request whose served answer was rated 1.0."""
    return chat_log(request_id, prompt, **log), Rating(request_id, 1.0)


def seed_good(engine: Engine, items: Iterable[tuple[dict[str, Any], Rating]]) -> None:
    pairs = list(items)
    seed(engine, [log for log, _ in pairs], [rating for _, rating in pairs])

"""Log rows and database probes shared by the traffic-log tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from switchyard.traffic.models import RequestLog

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1"
"""A database that is down: nothing listens on port 1."""


def row(i: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{i}",
        "created_at": datetime.now(UTC).isoformat(),
        "endpoint": "chat.completions",
        "model": "demo-base",
        "params": {"max_tokens": 3},
        "request": [{"role": "user", "content": f"q{i}"}],
        "output": f"a{i}",
        "prompt_tokens": 4,
        "completion_tokens": 3,
        "status": 200,
        **fields,
    }


def count(db: Engine) -> int:
    with Session(db) as session:
        return session.exec(select(func.count()).select_from(RequestLog)).one()


def stored_ids(db: Engine) -> set[str]:
    with Session(db) as session:
        return {r.id for r in session.exec(select(RequestLog))}

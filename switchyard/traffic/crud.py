"""Traffic-log queries and the idempotent batch insert."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from switchyard.traffic.models import Feedback, FeedbackCreate, RequestLog, RequestLogBase

# Both dialects can skip rows whose id is already stored, which makes a replay harmless.
INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def insert_logs_idempotent(*, engine: Engine, records: Sequence[dict[str, Any]]) -> None:
    """Insert spooled records, skipping ids already stored (a replay after a crash is harmless)."""
    if not records:
        return
    rows = [RequestLogBase.model_validate(record).model_dump() for record in records]
    insert = INSERTS.get(engine.dialect.name)
    if insert is None:  # pragma: no cover - the project supports these two
        raise RuntimeError(f"unsupported database dialect {engine.dialect.name}")
    statement = insert(RequestLog.__table__).on_conflict_do_nothing(index_elements=["id"])  # type: ignore[attr-defined]
    with engine.begin() as connection:
        connection.execute(statement, rows)


PROBE_ROW = {"id": "probe", "endpoint": "probe", "model": "probe", "params": {}, "status": 0}


def probe_log_insert(*, engine: Engine) -> None:
    """Insert a minimal row and roll it back; raises if the database would refuse any row."""
    row = RequestLogBase.model_validate(PROBE_ROW).model_dump()
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(RequestLog.__table__.insert(), [row])  # type: ignore[attr-defined]
        transaction.rollback()


def get_log(*, session: Session, request_id: str) -> RequestLog | None:
    return session.get(RequestLog, request_id)


def list_logs(
    *,
    session: Session,
    adapter: str | None = None,
    key_id: int | None = None,
    status: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[RequestLog], int]:
    conditions = []
    if adapter is not None:
        conditions.append(RequestLog.adapter == adapter)
    if key_id is not None:
        conditions.append(RequestLog.key_id == key_id)
    if status is not None:
        conditions.append(RequestLog.status == status)
    if since is not None:
        conditions.append(RequestLog.created_at >= since)
    if until is not None:
        conditions.append(RequestLog.created_at < until)
    count = session.exec(select(func.count()).select_from(RequestLog).where(*conditions)).one()
    rows = session.exec(
        select(RequestLog)
        .where(*conditions)
        .order_by(RequestLog.created_at.desc(), RequestLog.id)  # type: ignore[attr-defined]
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), count


def create_feedback(
    *,
    session: Session,
    feedback_in: FeedbackCreate,
    key_id: int | None,
    tenant: str | None = None,
    reviewer: bool = False,
) -> Feedback:
    """Store feedback; ``reviewer`` marks a reviewer's, the only kind curation may train on."""
    row = Feedback.model_validate(
        feedback_in.model_dump(exclude={"completion_id"}),
        update={"request_id": feedback_in.completion_id, "key_id": key_id, "tenant": tenant, "reviewer": reviewer},
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def list_feedback(*, session: Session, request_id: str) -> list[Feedback]:
    return list(session.exec(select(Feedback).where(Feedback.request_id == request_id).order_by(Feedback.id)))  # type: ignore[arg-type]

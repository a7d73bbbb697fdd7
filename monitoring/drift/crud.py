"""Queries on drift results."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitoring.drift.models import DriftResult, DriftResultCreate, DriftStatus
from switchyard.db import session_scope


def create_result(*, session: Session, result_in: DriftResultCreate, report_file: str | None = None) -> DriftResult:
    row = DriftResult.model_validate(result_in, update={"report_file": report_file})
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def get_result(*, session: Session, result_id: int) -> DriftResult | None:
    return session.get(DriftResult, result_id)


def list_results(
    *, session: Session, adapter: str | None = None, offset: int = 0, limit: int = 50
) -> tuple[list[DriftResult], int]:
    """Results, newest first (one adapter's, or every adapter's), and how many there are."""
    conditions = [DriftResult.adapter == adapter] if adapter is not None else []
    count = session.exec(select(func.count()).select_from(DriftResult).where(*conditions)).one()
    rows = session.exec(
        select(DriftResult)
        .where(*conditions)
        .order_by(col(DriftResult.created_at).desc(), col(DriftResult.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), count


def set_report_file(*, session: Session, result: DriftResult, report_file: str | None) -> DriftResult:
    result.report_file = report_file
    session.add(result)
    session.commit()
    session.refresh(result)
    return result


def reports_beyond(*, session: Session, adapter: str, keep: int) -> list[DriftResult]:
    """The adapter's results that still have a report file, past its ``keep`` newest ones."""
    return list(
        session.exec(
            select(DriftResult)
            .where(DriftResult.adapter == adapter, col(DriftResult.report_file).is_not(None))
            .order_by(col(DriftResult.created_at).desc(), col(DriftResult.id).desc())
            .offset(keep)
        )
    )


def latest_results(*, session: Session) -> list[DriftResult]:
    """Each adapter's newest result."""
    newest = select(func.max(DriftResult.id).label("id")).group_by(col(DriftResult.adapter)).subquery()
    rows = session.exec(select(DriftResult).join(newest, col(DriftResult.id) == newest.c.id))
    return sorted(rows, key=lambda row: row.adapter)


def drift_share_by_adapter(db: Engine) -> dict[str, float]:
    """The metric hook: each adapter's drift share in its newest result that compared anything
    (an ``insufficient_data`` result has none, and is skipped). One grouped query; read it on a
    worker thread and cache it between scrapes, as the other database gauges are."""
    with session_scope(db) as session:
        newest = (
            select(func.max(DriftResult.id).label("id"))
            .where(col(DriftResult.drift_share).is_not(None))
            .group_by(col(DriftResult.adapter))
            .subquery()
        )
        rows = session.exec(
            select(DriftResult.adapter, DriftResult.drift_share).join(newest, col(DriftResult.id) == newest.c.id)
        ).all()
    return {adapter: float(share) for adapter, share in rows if share is not None}


def drifted_by_adapter(db: Engine) -> dict[str, bool]:
    """The metric hook for alerts: whether each adapter's newest result that compared anything is
    drifted. A later ``insufficient_data`` result (a quiet hour) does not clear the alert: nothing
    was fixed, there was only too little traffic to tell."""
    with session_scope(db) as session:
        newest = (
            select(func.max(DriftResult.id).label("id"))
            .where(DriftResult.status == DriftStatus.ok)
            .group_by(col(DriftResult.adapter))
            .subquery()
        )
        rows = session.exec(
            select(DriftResult.adapter, DriftResult.drifted).join(newest, col(DriftResult.id) == newest.c.id)
        ).all()
    return {adapter: bool(drifted) for adapter, drifted in rows}

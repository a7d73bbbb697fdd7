"""Drift results on SQLite and PostgreSQL: history newest first, and the metric hook."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from monitoring.drift.crud import (
    create_result,
    drift_share_by_adapter,
    drifted_by_adapter,
    get_result,
    latest_results,
    list_results,
    reports_beyond,
)
from monitoring.drift.models import (
    ColumnDrift,
    ColumnKind,
    ColumnRole,
    DriftResultCreate,
    DriftStatus,
    DriftTrigger,
    ReferenceKind,
    to_public,
)
from switchyard.db import session_scope


def result(adapter: str, *, share: float | None = 0.0, drifted: bool = False) -> DriftResultCreate:
    column = ColumnDrift(
        column="prompt",
        kind=ColumnKind.text,
        role=ColumnRole.content,
        decides_verdict=True,
        status=DriftStatus.ok,
        method="abs_text_content_drift",
        score=0.97,
        threshold=0.71,
        drifted=drifted,
        reference_values=60,
        current_values=60,
    )
    return DriftResultCreate(
        adapter=adapter,
        status=DriftStatus.ok if share is not None else DriftStatus.insufficient_data,
        drifted=drifted,
        drift_share=share,
        columns=[column.model_dump(mode="json")] if share is not None else [],
        reference_kind=ReferenceKind.previous_window,
        reference_rows=60,
        current_rows=60,
        trigger=DriftTrigger.api,
    )


def test_history_is_newest_first_and_paginated(db: Engine) -> None:
    with session_scope(db) as session:
        first = create_result(session=session, result_in=result("bot"), report_file="bot/a.html.gz")
        create_result(session=session, result_in=result("other"))
        last = create_result(session=session, result_in=result("bot", share=0.5, drifted=True))
    with session_scope(db) as session:
        rows, count = list_results(session=session, adapter="bot")
        assert count == 2 and [r.id for r in rows] == [last.id, first.id]
        rows, count = list_results(session=session, offset=1, limit=1)
        assert count == 3 and len(rows) == 1
        stored = get_result(session=session, result_id=first.id or 0)
        assert stored is not None and stored.report_file == "bot/a.html.gz"
        public = to_public(stored)
        assert public.has_report and public.columns[0].score == 0.97 and public.columns[0].kind is ColumnKind.text
        assert get_result(session=session, result_id=10_000) is None


def test_the_metric_hook_reads_each_adapters_newest_comparison(db: Engine) -> None:
    with session_scope(db) as session:
        create_result(session=session, result_in=result("bot", share=0.25, drifted=True))
        create_result(session=session, result_in=result("bot", share=None))  # too little traffic since
        create_result(session=session, result_in=result("other", share=0.0))
        assert [r.adapter for r in latest_results(session=session)] == ["bot", "other"]
    assert drift_share_by_adapter(db) == {"bot": 0.25, "other": 0.0}
    # A quiet hour after a drifted verdict does not clear the alert: nothing was fixed.
    assert drifted_by_adapter(db) == {"bot": True, "other": False}


def test_reports_past_the_newest_are_listed_for_pruning(db: Engine) -> None:
    with session_scope(db) as session:
        made = [
            create_result(session=session, result_in=result("bot"), report_file=f"bot/{i}.html.gz") for i in range(3)
        ]
        create_result(session=session, result_in=result("bot"))  # none of its own
        assert [r.id for r in reports_beyond(session=session, adapter="bot", keep=1)] == [made[1].id, made[0].id]
        assert reports_beyond(session=session, adapter="bot", keep=3) == []

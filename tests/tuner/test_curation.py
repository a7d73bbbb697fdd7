"""Curation of logged traffic into dataset snapshots, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from switchyard.traffic.crud import create_feedback, insert_logs_idempotent
from switchyard.traffic.models import FeedbackCreate
from tuner.curation import CurationPolicy, curate
from tuner.snapshots import load_snapshot, write_snapshot


def log(  # type: ignore[no-untyped-def]
    request_id: str,
    *,
    adapter: str = "bot",
    output: str | None = "served",
    status: int = 200,
    content=True,
    tenant=None,
):
    return {
        "id": request_id,
        "tenant": tenant,
        "created_at": datetime.now(UTC).isoformat(),
        "endpoint": "chat.completions",
        "model": adapter,
        "adapter": adapter,
        "request": [{"role": "user", "content": f"question {request_id}"}] if content else None,
        "output": output if content else None,
        "params": {},
        "status": status,
    }


@pytest.fixture
def logged(db: Engine) -> Engine:
    insert_logs_idempotent(
        engine=db,
        records=[
            log("good"),
            log("bad"),
            log("corrected"),
            log("mixed"),
            log("unrated"),
            log("private", content=False),
            log("failed", status=503),
            log("other", adapter="other-bot"),
            log("acme-good", tenant="acme"),
            log("user-corrected"),
        ],
    )
    with Session(db) as session:
        for request_id, score, correction in [
            ("good", 1.0, None),
            ("bad", -1.0, None),
            ("corrected", -1.0, "the right answer"),
            ("mixed", 1.0, None),
            ("mixed", -0.5, None),
            ("private", 1.0, None),
            ("failed", 1.0, None),
            ("other", 1.0, None),
            ("acme-good", 1.0, None),
        ]:
            create_feedback(
                session=session,
                feedback_in=FeedbackCreate(completion_id=request_id, score=score, corrected_completion=correction),
                key_id=None,
                reviewer=True,  # the admin: its corrections may be trained on
            )
        # An application user's correction is kept, but it is not a label to train on.
        create_feedback(
            session=session,
            feedback_in=FeedbackCreate(completion_id="user-corrected", score=-1.0, corrected_completion="my answer"),
            key_id=7,
            reviewer=False,
        )
    return db


def test_curation_selects_good_and_corrected_answers(logged: Engine) -> None:
    with Session(logged) as session:
        examples = curate(session=session, policy=CurationPolicy(adapter="bot", tenant=None, min_score=0.5))
    by_id = {e["request_id"]: e["messages"] for e in examples}
    assert set(by_id) == {"good", "corrected"}  # mixed averages 0.25; private has no content
    assert by_id["good"] == [
        {"role": "user", "content": "question good"},
        {"role": "assistant", "content": "served"},
    ]
    assert by_id["corrected"][-1] == {"role": "assistant", "content": "the right answer"}
    assert "user-corrected" not in by_id
    with Session(logged) as session:
        lenient = curate(session=session, policy=CurationPolicy(adapter="bot", tenant=None, min_score=0.0))
    assert {e["request_id"] for e in lenient} == {"good", "corrected", "mixed"}


def test_curation_never_mixes_tenants(logged: Engine) -> None:
    with Session(logged) as session:
        acme = curate(session=session, policy=CurationPolicy(adapter="bot", tenant="acme"))
        default = curate(session=session, policy=CurationPolicy(adapter="bot", tenant=None))
    assert [e["request_id"] for e in acme] == ["acme-good"]
    assert "acme-good" not in {e["request_id"] for e in default}


def test_snapshot_round_trip_and_is_content_addressed(logged: Engine, tmp_path: Path) -> None:
    with Session(logged) as session:
        examples = curate(session=session, policy=CurationPolicy(adapter="bot", tenant=None))
    snapshot = write_snapshot(examples, root=tmp_path, adapter="bot")
    again = write_snapshot(examples, root=tmp_path, adapter="bot")
    assert again.id == snapshot.id and snapshot.count == 2
    dataset = load_snapshot(snapshot.path)
    assert dataset.num_rows == 2 and dataset[0]["messages"][-1]["role"] == "assistant"
    assert write_snapshot(examples[:1], root=tmp_path, adapter="bot").id != snapshot.id
    with pytest.raises(ValueError):
        write_snapshot([], root=tmp_path, adapter="bot")

"""Choosing and reading the windows a check compares, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.models import Adapter
from monitoring.drift.models import ReferenceKind, TimeWindow
from monitoring.drift.windows import (
    current_window,
    previous_window,
    read_frame,
    sample,
    sample_keys,
    snapshot_reference,
    time_window,
)
from switchyard.db import session_scope
from switchyard.traffic.crud import create_feedback, insert_logs_idempotent
from switchyard.traffic.models import FeedbackCreate
from tests.utils.drift import T0, log_traffic, logged_rows, trained_on
from tests.utils.tuning import add_adapter
from tuner.manifests import create_manifest
from tuner.models import CurationManifestCreate
from tuner.snapshots import write_snapshot


def at(seconds: float):  # type: ignore[no-untyped-def]
    return T0 + timedelta(seconds=seconds)


def seed_bot(db: Engine) -> list[dict]:
    """100 served requests of ``bot`` one a second from T0, beside what a window must leave out."""
    add_adapter(db, "bot")
    rows = log_traffic(db, 100, rng=random.Random(1))
    noise = logged_rows(3, rng=random.Random(2), adapter="other", start=at(10), prefix="chatcmpl-o")
    failed = logged_rows(2, rng=random.Random(3), start=at(20), prefix="chatcmpl-f")
    for row in failed:
        row["status"] = 500
    embedding = logged_rows(1, rng=random.Random(4), start=at(30), prefix="chatcmpl-e")
    embedding[0]["endpoint"] = "embeddings"
    insert_logs_idempotent(engine=db, records=noise + failed + embedding)
    return rows


def ids(rows: list[dict]) -> list[str]:
    return [row["id"] for row in rows]


def test_the_current_window_is_the_newest_served_requests(db: Engine) -> None:
    rows = seed_bot(db)
    with session_scope(db) as session:
        by_count = current_window(session, "bot", rows=30, seconds=None)
        by_time = current_window(session, "bot", rows=30, seconds=60, now=at(99.5))
        pinned = time_window(session, "bot", TimeWindow(at(10), at(20)))
    assert by_count.ids == ids(rows[70:])[::-1] and (by_count.start, by_count.end) == (at(70), at(99))
    assert set(by_time.ids) == set(ids(rows[40:])) and by_time.start == at(40)  # the last 60 s, up to now
    assert set(pinned.ids) == set(ids(rows[10:20]))  # start included, end excluded; other rows never


def test_the_previous_window_holds_as_much_traffic_just_before(db: Engine) -> None:
    rows = seed_bot(db)
    with session_scope(db) as session:
        current = current_window(session, "bot", rows=30, seconds=None)
        by_count = previous_window(session, "bot", current, rows=30, seconds=None)
        by_time = previous_window(session, "bot", current, rows=30, seconds=10)
    assert by_count.kind is ReferenceKind.previous_window
    assert by_count.ids == ids(rows[40:70])[::-1]
    assert set(by_time.ids) == set(ids(rows[60:70]))


def manifest_for(adapter: str, snapshot_id: str, request_ids: list[str]) -> CurationManifestCreate:
    return CurationManifestCreate(
        snapshot_id=snapshot_id,
        adapter=adapter,
        path=f"/data/datasets/{adapter}/{snapshot_id}",
        window_start=at(0),
        window_end=at(50),
        considered=len(request_ids),
        train_count=len(request_ids),
        holdout_count=0,
        source_request_ids=request_ids,
    )


def test_the_reference_is_the_training_snapshots_requests(db: Engine, tmp_path: Path) -> None:
    rows = seed_bot(db)
    with Session(db) as session:
        create_manifest(session=session, manifest_in=manifest_for("bot", "bot-old", ids(rows[:10])))
        create_manifest(session=session, manifest_in=manifest_for("bot", "bot-new", ids(rows[10:40])))

    def reference():  # type: ignore[no-untyped-def]
        with session_scope(db) as session:
            adapter = session.get(Adapter, 1)
            assert adapter is not None
            return snapshot_reference(session, adapter, tmp_path)

    latest = reference()  # no version trained on one: the latest curated snapshot
    assert latest.kind is ReferenceKind.snapshot and latest.snapshot_id == "bot-new"
    assert latest.ids == ids(rows[10:40]) and (latest.start, latest.end) == (at(0), at(50))
    trained_on(db, "bot", "bot-old")
    assert reference().snapshot_id == "bot-old"  # the active version's own training data


def test_a_snapshot_of_uploaded_files_is_its_own_reference(db: Engine, tmp_path: Path) -> None:
    add_adapter(db, "bot")
    assert snapshot_reference_of(db, tmp_path) is None  # nothing trained, nothing curated
    train = [
        {
            "prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"question {i}"}],
            "completion": [{"role": "assistant", "content": f"answer {i}"}],
            "request_id": f"train.jsonl#{i}",
        }
        for i in range(5)
    ]
    snapshot = write_snapshot(train=train, holdout=train[:1], root=tmp_path, adapter="bot")
    trained_on(db, "bot", snapshot.id)
    side = snapshot_reference_of(db, tmp_path)
    assert side is not None and side.snapshot_id == snapshot.id and side.count == 6
    with session_scope(db) as session:
        frame = read_frame(session, side, sample_keys(side, 3, seed=0)[0])
    assert len(frame) == 3 and frame["prompt"].str.startswith("question").all()
    assert frame["response"].str.startswith("answer").all() and frame["latency_ms"].isna().all()


def snapshot_reference_of(db: Engine, root: Path):  # type: ignore[no-untyped-def]
    with session_scope(db) as session:
        adapter = session.get(Adapter, 1)
        assert adapter is not None
        return snapshot_reference(session, adapter, root)


def test_reading_takes_the_last_user_message_the_answer_and_the_mean_feedback(db: Engine) -> None:
    add_adapter(db, "bot")
    base = logged_rows(4, rng=random.Random(5))
    base[0]["request"] = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
    ]
    base[1]["endpoint"], base[1]["request"] = "completions", "Once upon a time"
    base[2]["request"], base[2]["output"] = None, None  # the key does not log content
    insert_logs_idempotent(engine=db, records=base)
    with Session(db) as session:
        for score in (1.0, 0.0):
            create_feedback(
                session=session, feedback_in=FeedbackCreate(completion_id=base[0]["id"], score=score), key_id=None
            )
    with session_scope(db) as session:
        side = time_window(session, "bot", TimeWindow(at(-1), at(10)))
        frame = read_frame(session, side, [base[0]["id"], base[1]["id"], base[2]["id"], "chatcmpl-gone"])
    frame = frame.set_axis(["chat", "completion", "private"])
    assert frame.loc["chat", "prompt"] == "second\nquestion" and frame.loc["chat", "feedback_score"] == 0.5
    assert frame.loc["completion", "prompt"] == "Once upon a time"
    assert math.isnan(frame.loc["completion", "feedback_score"])
    assert frame.loc["private", "prompt"] is None and math.isnan(frame.loc["private", "prompt_length"])
    assert frame.loc["private", "prompt_tokens"] == base[2]["prompt_tokens"]  # numbers are kept


def test_sampling_is_seeded_and_keeps_order() -> None:
    items = list(range(1000))
    first, again = sample(items, 100, seed=3), sample(items, 100, seed=3)
    assert first == again == sorted(first) and len(set(first)) == 100
    assert sample(items, 100, seed=4) != first
    assert sample(items[:50], 100, seed=3) == items[:50]

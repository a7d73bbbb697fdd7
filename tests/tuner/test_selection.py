"""Which logged requests may become examples, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from tests.tuner.traffic import Rating, at, chat_log, seed
from tuner.selection import CurationPolicy, Selection, select_candidates

BOT = CurationPolicy(adapter="bot", tenant=None, min_score=0.5)


@pytest.fixture
def logged(db: Engine) -> Engine:
    logs = [
        chat_log("good", "question good", created_at=at(1)),
        chat_log("bad", "question bad", created_at=at(2)),
        chat_log("corrected", "question corrected", created_at=at(3)),
        chat_log("mixed", "question mixed", created_at=at(4)),
        chat_log("lukewarm", "question lukewarm", created_at=at(5)),
        chat_log("unrated", "question unrated", created_at=at(6)),
        chat_log("private", "question private", content=False, created_at=at(7)),
        chat_log("failed", "question failed", status=503, created_at=at(8)),
        chat_log("other", "question other", adapter="other-bot", created_at=at(9)),
        chat_log("acme-good", "question acme", tenant="acme", created_at=at(10)),
        chat_log("user-corrected", "question user-corrected", created_at=at(11)),
        chat_log("parts", [{"role": "user", "content": [{"type": "text", "text": "in parts"}]}], created_at=at(12)),
        chat_log("no-output", "question no output", output=None, created_at=at(13)),
        chat_log("empty", [{"role": "user", "content": ""}], created_at=at(14)),
    ]
    ratings = [
        Rating("good", 1.0),
        Rating("bad", -1.0),
        Rating("corrected", -1.0, "the right answer"),
        Rating("mixed", 1.0),
        Rating("mixed", -0.5),
        Rating("lukewarm", 0.2),
        Rating("private", 1.0),
        Rating("failed", 1.0),
        Rating("other", 1.0),
        Rating("acme-good", 1.0),
        Rating("parts", 1.0),
        Rating("no-output", 1.0),
        Rating("empty", 1.0),
        # An application user's correction is kept, but it is not a label to train on.
        Rating("user-corrected", -1.0, "my answer", reviewer=False),
    ]
    seed(db, logs, ratings)
    return db


def selected(engine: Engine, policy: CurationPolicy) -> Selection:
    with Session(engine) as session:
        return select_candidates(session=session, policy=policy)


def test_good_and_corrected_answers_are_selected(logged: Engine) -> None:
    selection = selected(logged, BOT)
    by_id = {c.request_id: c for c in selection.candidates}
    assert list(by_id) == ["good", "corrected", "parts"]  # oldest first
    assert by_id["good"].prompt == [{"role": "user", "content": "question good"}]
    assert by_id["good"].completion == "served" and not by_id["good"].corrected
    assert by_id["corrected"].completion == "the right answer" and by_id["corrected"].corrected
    assert by_id["parts"].prompt == [{"role": "user", "content": "in parts"}]
    assert by_id["good"].row() == {
        "prompt": [{"role": "user", "content": "question good"}],
        "completion": [{"role": "assistant", "content": "served"}],
        "request_id": "good",
    }


def test_every_other_request_is_counted_with_its_reason(logged: Engine) -> None:
    selection = selected(logged, BOT)
    assert selection.considered == 12  # the bot's chat requests without a tenant
    assert selection.dropped == {
        "negative_feedback": 2,  # bad (-1.0); user-corrected (a user's correction is no label)
        "low_score": 2,  # mixed averages 0.25, lukewarm 0.2: below 0.5
        "unrated": 1,
        "no_content": 3,  # private (not logged), no-output, empty
        "error_status": 1,
    }
    assert selection.considered == len(selection.candidates) + sum(selection.dropped.values())


def test_min_score_decides_uncorrected_answers(logged: Engine) -> None:
    lenient = selected(logged, replace(BOT, min_score=0.0))
    assert {c.request_id for c in lenient.candidates} == {"good", "corrected", "parts", "mixed", "lukewarm"}


def test_tenants_never_mix(logged: Engine) -> None:
    acme = selected(logged, CurationPolicy(adapter="bot", tenant="acme"))
    assert [c.request_id for c in acme.candidates] == ["acme-good"] and acme.considered == 1
    assert "acme-good" not in {c.request_id for c in selected(logged, BOT).candidates}


def test_the_window_is_half_open(logged: Engine) -> None:
    window = selected(logged, replace(BOT, since=at(1), until=at(3)))
    assert [c.request_id for c in window.candidates] == ["good"]
    assert window.considered == 2 and window.dropped == {"negative_feedback": 1}


def test_the_latest_reviewer_correction_wins(db: Engine) -> None:
    seed(
        db,
        [chat_log("r", "question")],
        [Rating("r", 1.0, "first"), Rating("r", 1.0, "second"), Rating("r", 1.0, "a user's", reviewer=False)],
    )
    [candidate] = selected(db, BOT).candidates
    assert candidate.completion == "second"

"""Curation manifests on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from tuner.manifests import create_manifest, get_manifest, latest_manifest, list_manifests
from tuner.models import CurationManifestCreate

END = datetime(2026, 1, 2, tzinfo=UTC)


def manifest(snapshot_id: str, *, tenant: str | None = None, adapter: str = "bot") -> CurationManifestCreate:
    return CurationManifestCreate(
        snapshot_id=snapshot_id,
        adapter=adapter,
        tenant=tenant,
        path=f"/data/datasets/{adapter}/{snapshot_id}",
        window_end=END,
        considered=10,
        train_count=6,
        holdout_count=1,
        dropped={"duplicate": 2, "unrated": 1},
        pii_counts={"EMAIL_ADDRESS": 3},
        policy={"min_score": 0.5, "settings": {"holdout_fraction": 0.15}},
        source_request_ids=[f"chatcmpl-{i}" for i in range(7)],
    )


def test_create_read_and_list(db: Engine) -> None:
    with Session(db) as session:
        first_id = create_manifest(session=session, manifest_in=manifest("bot-1")).id
        create_manifest(session=session, manifest_in=manifest("bot-2"))
        create_manifest(session=session, manifest_in=manifest("bot-3", tenant="acme"))
        create_manifest(session=session, manifest_in=manifest("other-1", adapter="other"))
    with Session(db) as session:
        stored = get_manifest(session=session, snapshot_id="bot-1")
        assert stored is not None and stored.id == first_id
        assert stored.dropped == {"duplicate": 2, "unrated": 1} and stored.pii_counts == {"EMAIL_ADDRESS": 3}
        assert stored.source_request_ids[-1] == "chatcmpl-6" and stored.policy["settings"]["holdout_fraction"] == 0.15
        assert stored.window_end.replace(tzinfo=UTC) == END and stored.created_at is not None
        latest = latest_manifest(session=session, adapter="bot", tenant=None)
        assert latest is not None and latest.snapshot_id == "bot-2"
        acme = latest_manifest(session=session, adapter="bot", tenant="acme")
        assert acme is not None and acme.snapshot_id == "bot-3"
        assert latest_manifest(session=session, adapter="bot", tenant="globex") is None
        rows, count = list_manifests(session=session, adapter="bot", tenant=None)
        assert count == 2 and [r.snapshot_id for r in rows] == ["bot-2", "bot-1"]
        rows, count = list_manifests(session=session, adapter="bot", tenant=None, offset=1, limit=1)
        assert count == 2 and [r.snapshot_id for r in rows] == ["bot-1"]


def test_the_same_snapshot_gets_one_manifest(db: Engine) -> None:
    with Session(db) as session:
        first = create_manifest(session=session, manifest_in=manifest("bot-1"))
        again = create_manifest(session=session, manifest_in=manifest("bot-1"))
        assert again.id == first.id
        assert list_manifests(session=session, adapter="bot", tenant=None)[1] == 1


def test_latest_is_the_most_recently_curated(db: Engine) -> None:
    # ``latest`` is the most recently curated, even when it covers an older window.
    with Session(db) as session:
        create_manifest(session=session, manifest_in=manifest("bot-1"))
        older_window = manifest("bot-2").model_copy(update={"window_end": END - timedelta(days=1)})
        create_manifest(session=session, manifest_in=older_window)
        latest = latest_manifest(session=session, adapter="bot", tenant=None)
        assert latest is not None and latest.snapshot_id == "bot-2"

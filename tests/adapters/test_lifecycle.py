"""Lifecycle transitions on SQLite and PostgreSQL: each one atomic, audited and announced."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters import lifecycle
from adapters.base_model import BaseModelSpec
from adapters.exceptions import AdapterConflict, AdapterNotFound, InvalidAdapter
from adapters.models import AdapterEvent, AdapterVersion, VersionStatus
from adapters.registry import describe, register_version, registry_generation, require_adapter, routing_table
from adapters.store import LocalArtifactStore
from adapters.validation import EngineLimits
from tests.utils.adapters import good_adapter

LIMITS = EngineLimits(max_lora_rank=16, max_adapter_bytes=10 * 1024 * 1024)


@pytest.fixture
def three_versions(db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path) -> LocalArtifactStore:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    with Session(db) as session:
        for i in range(3):
            register_version(
                session=session, store=store, name="bot", source=source, base=base_spec, limits=LIMITS, activate=i == 0
            )
    return store


def statuses(session: Session) -> dict[int, str]:
    return {v.version: v.status.value for v in session.exec(select(AdapterVersion))}


def test_promote_and_rollback(db: Engine, three_versions: LocalArtifactStore) -> None:
    with Session(db) as session:
        generation = registry_generation(session=session)
        lifecycle.promote(session=session, name="bot", version=2)
        assert statuses(session) == {1: "retired", 2: "active", 3: "candidate"}
        assert registry_generation(session=session) == generation + 1
        lifecycle.rollback(session=session, name="bot")
        assert statuses(session) == {1: "active", 2: "retired", 3: "candidate"}
        lifecycle.rollback(session=session, name="bot")  # rolling back a rollback returns to 2
        assert statuses(session) == {1: "retired", 2: "active", 3: "candidate"}
        actions = [e.action for e in session.exec(select(AdapterEvent).order_by(AdapterEvent.id))]
        assert actions == ["register", "register", "register", "promote", "rollback", "rollback"]
        view = describe(session=session, adapter=require_adapter(session=session, name="bot"))
        assert view.active_version == 2 and [v.version for v in view.versions] == [1, 2, 3]


def test_canary_split_and_promotion_of_the_canary(
    db: Engine, three_versions: LocalArtifactStore, base_spec: BaseModelSpec
) -> None:
    with Session(db) as session:
        lifecycle.set_canary(session=session, name="bot", version=3, weight=0.1)
        route = routing_table(session=session, store=three_versions, base_fingerprint=base_spec.fingerprint)["bot"]
        assert route.active.version == 1 and route.canary.version == 3 and route.canary_weight == 0.1
        lifecycle.set_canary(session=session, name="bot", version=2, weight=0.2)  # replaces the canary
        assert statuses(session) == {1: "active", 2: "canary", 3: "candidate"}
        lifecycle.promote(session=session, name="bot", version=2)
        route = routing_table(session=session, store=three_versions, base_fingerprint=base_spec.fingerprint)["bot"]
        assert route.active.version == 2 and route.canary is None
        lifecycle.set_canary(session=session, name="bot", version=3, weight=0.5)
        lifecycle.set_canary(session=session, name="bot", version=3, weight=0.0)
        assert (
            routing_table(session=session, store=three_versions, base_fingerprint=base_spec.fingerprint)["bot"].canary
            is None
        )
        assert statuses(session)[3] == "candidate"


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (lambda s, st: lifecycle.retire(session=s, name="bot", version=1), AdapterConflict),
        (lambda s, st: lifecycle.delete_version(session=s, store=st, name="bot", version=1), AdapterConflict),
        (lambda s, st: lifecycle.set_canary(session=s, name="bot", version=1, weight=0.5), AdapterConflict),
        (lambda s, st: lifecycle.set_canary(session=s, name="bot", version=2, weight=1.5), InvalidAdapter),
        (lambda s, st: lifecycle.rollback(session=s, name="bot"), AdapterConflict),
        (lambda s, st: lifecycle.promote(session=s, name="bot", version=9), AdapterNotFound),
        (lambda s, st: lifecycle.promote(session=s, name="nobody", version=1), AdapterNotFound),
    ],
    ids=["retire-active", "delete-active", "canary-active", "bad-weight", "no-previous", "no-version", "no-adapter"],
)
def test_refused_transitions_change_nothing(db: Engine, three_versions: LocalArtifactStore, action, error) -> None:  # type: ignore[no-untyped-def]
    with Session(db) as session:
        before, generation = statuses(session), registry_generation(session=session)
        with pytest.raises(error):
            action(session, three_versions)
        session.rollback()
        assert statuses(session) == before and registry_generation(session=session) == generation


def test_rejected_versions_are_never_routed(db: Engine, three_versions: LocalArtifactStore) -> None:
    with Session(db) as session:
        lifecycle.reject(session=session, name="bot", version=2, reason="worse than champion")
        with pytest.raises(AdapterConflict):
            lifecycle.promote(session=session, name="bot", version=2)
        with pytest.raises(AdapterConflict):
            lifecycle.set_canary(session=session, name="bot", version=2, weight=0.1)


def test_delete_removes_artifact_and_ids_and_numbers_are_never_reused(
    db: Engine, three_versions: LocalArtifactStore, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path
) -> None:
    with Session(db) as session:
        last = session.exec(select(AdapterVersion).where(AdapterVersion.version == 3)).one()
        folder = three_versions.local_path(last.artifact_uri)
        deleted_id = lifecycle.delete_version(session=session, store=three_versions, name="bot", version=3)
        assert deleted_id == last.id and not folder.exists()
        fresh = register_version(
            session=session,
            store=three_versions,
            name="bot",
            source=good_adapter(demo_model, tmp_path / "again"),
            base=base_spec,
            limits=LIMITS,
        )
        # The engine knows weights by this id, and clients by name@N: neither may ever name the
        # deleted weights' successor, so the number 3 is gone for good.
        assert fresh.id > deleted_id and fresh.version == 4
        assert statuses(session) == {1: "active", 2: "candidate", 4: "candidate"}
        assert VersionStatus(fresh.status) == VersionStatus.candidate
        with pytest.raises(AdapterNotFound):
            lifecycle.promote(session=session, name="bot", version=3)

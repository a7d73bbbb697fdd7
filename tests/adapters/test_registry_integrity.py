"""What a version number, a digest and a base fingerprint promise, on SQLite and PostgreSQL:
numbers are never reused, stored files are what was registered, an import that died half-way
leaves nothing in the way, and a version only ever serves the base checkpoint it was built for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters import lifecycle
from adapters.base_model import BaseModelSpec
from adapters.exceptions import AdapterConflict, AdapterNotFound, ArtifactCorrupt, InvalidAdapter
from adapters.models import Adapter, AdapterEventPublic, AdapterVersion
from adapters.registry import get_servable, list_events, register_version, require_adapter, routing_table
from adapters.store import LocalArtifactStore
from adapters.validation import EngineLimits
from switchyard.demo import build_demo_model
from tests.utils.adapters import base_variant, good_adapter

LIMITS = EngineLimits(max_lora_rank=16, max_adapter_bytes=10 * 1024 * 1024)


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, no cleanup either."""


class DiesAfterCopy(LocalArtifactStore):
    def put(self, source: Path, *, name: str, sha256: str) -> str:
        super().put(source, name=name, sha256=sha256)
        raise Crash


def _register(session: Session, store: LocalArtifactStore, source: Path, base: BaseModelSpec, **kw) -> AdapterVersion:  # type: ignore[no-untyped-def]
    return register_version(session=session, store=store, name="bot", source=source, base=base, limits=LIMITS, **kw)


def _store_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_reserved_names_are_refused(db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    with Session(db) as session:
        for served in ("demo-base", "Demo-Base"):
            with pytest.raises(InvalidAdapter) as info:
                register_version(
                    session=session,
                    store=store,
                    name="demo-base",
                    source=source,
                    base=base_spec,
                    limits=LIMITS,
                    reserved_names=frozenset({served}),
                )
            assert info.value.param == "name"
        assert session.exec(select(Adapter)).all() == []
    assert _store_files(tmp_path / "store") == []


def test_a_failed_commit_after_the_copy_leaves_nothing(
    db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    with Session(db) as session:

        def refuse(_session: Session) -> None:
            raise RuntimeError("the database went away during COMMIT")

        event.listen(session, "before_commit", refuse, once=True)
        with pytest.raises(RuntimeError):
            _register(session, store, source, base_spec, activate=True)
        assert _store_files(tmp_path / "store") == []
        version = _register(session, store, source, base_spec, activate=True)
        assert version.version == 1
        route = routing_table(session=session, store=store, base_fingerprint=base_spec.fingerprint)["bot"]
        assert route.active is not None and route.active.version == 1


def test_an_import_that_died_after_the_copy_does_not_block_the_next(
    db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path
) -> None:
    source = good_adapter(demo_model, tmp_path / "src")
    with Session(db) as session:
        with pytest.raises(Crash):
            _register(session, DiesAfterCopy(tmp_path / "store"), source, base_spec)
        session.rollback()
        leftover = _store_files(tmp_path / "store")
        assert len(leftover) == 2  # what a killed process leaves: a copy no row refers to
        store = LocalArtifactStore(tmp_path / "store")
        version = _register(session, store, source, base_spec, activate=True)
        assert version.version == 1  # the dead attempt never committed its number
        served = get_servable(
            session=session, store=store, name="bot", version=1, base_fingerprint=base_spec.fingerprint
        )
        assert served.path not in {p.parent for p in leftover}


def test_a_stale_session_never_reuses_a_number(
    db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    with Session(db, expire_on_commit=False) as first, Session(db, expire_on_commit=False) as second:
        assert _register(first, store, source, base_spec).version == 1
        assert _register(second, store, source, base_spec).version == 2
        assert _register(first, store, source, base_spec).version == 3  # its copy of the adapter row is old
        lifecycle.delete_version(session=first, store=store, name="bot", version=3)
        assert _register(second, store, source, base_spec).version == 4


def test_refusals_because_of_a_versions_state_are_conflicts(
    db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    with Session(db) as session:
        _register(session, store, source, base_spec, activate=True)
        _register(session, store, source, base_spec)
        lifecycle.reject(session=session, name="bot", version=2, reason="worse than the champion")
        fingerprint = base_spec.fingerprint
        with pytest.raises(AdapterConflict):
            get_servable(session=session, store=store, name="bot", version=2, base_fingerprint=fingerprint)
        with pytest.raises(AdapterNotFound):
            get_servable(session=session, store=store, name="bot", version=7, base_fingerprint=fingerprint)


def test_a_tampered_artifact_is_never_served(
    db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    with Session(db) as session:
        version = _register(session, store, source, base_spec, activate=True)
        assert "bot" in routing_table(session=session, store=store, base_fingerprint=base_spec.fingerprint)
        assert len(version.sha256) == len(version.config_sha256) == len(version.weights_sha256) == 64
        config = store.local_path(version.artifact_uri) / "adapter_config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), "lora_alpha": 160}))
        assert routing_table(session=session, store=store, base_fingerprint=base_spec.fingerprint) == {}
        with pytest.raises(ArtifactCorrupt):
            get_servable(session=session, store=store, name="bot", version=1, base_fingerprint=base_spec.fingerprint)


def test_events_are_listed_oldest_first(db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    with Session(db) as session:
        for i in range(3):
            _register(session, store, source, base_spec, activate=i == 0)
        lifecycle.promote(session=session, name="bot", version=3)
        adapter = require_adapter(session=session, name="bot")
        rows, count = list_events(session=session, adapter=adapter, offset=2, limit=5)
        assert count == 4 and [(e.action, e.version) for e in rows] == [("register", 3), ("promote", 3)]
        public = AdapterEventPublic.model_validate(rows[1])
        assert (public.id, public.action, public.version) == (rows[1].id, "promote", 3)


@pytest.fixture(scope="module")
def other_seed_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_model(tmp_path_factory.mktemp("seed1") / "demo", seed=1)


@pytest.mark.parametrize(
    "variant",
    [
        lambda demo, out, _other: base_variant(
            demo, out, config={"rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}}
        ),
        lambda demo, out, _other: base_variant(demo, out, swap_tokens=True),
        lambda _demo, _out, other: other,
    ],
    ids=["rope-theta", "retrained-tokenizer", "other-weights"],
)
def test_checkpoints_of_one_architecture_are_told_apart(
    db: Engine,
    demo_model: Path,
    base_spec: BaseModelSpec,
    other_seed_model: Path,
    tmp_path: Path,
    variant,  # type: ignore[no-untyped-def]
) -> None:
    other = BaseModelSpec.load(str(variant(demo_model, tmp_path / "other", other_seed_model)))
    assert (other.architecture, other.module_shapes) == (base_spec.architecture, base_spec.module_shapes)
    assert other.fingerprint != base_spec.fingerprint and len(other.fingerprint) <= 64
    store = LocalArtifactStore(tmp_path / "store")
    with Session(db) as session:
        _register(session, store, good_adapter(demo_model, tmp_path / "src"), base_spec, activate=True)
        assert routing_table(session=session, store=store, base_fingerprint=other.fingerprint) == {}
        with pytest.raises(AdapterConflict):
            get_servable(session=session, store=store, name="bot", version=1, base_fingerprint=other.fingerprint)
        assert "bot" in routing_table(session=session, store=store, base_fingerprint=base_spec.fingerprint)


def test_a_copy_of_the_same_checkpoint_keeps_its_fingerprint(
    demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path
) -> None:
    copy = base_variant(demo_model, tmp_path / "copy")
    config = json.loads((copy / "config.json").read_text())
    config["transformers_version"] = "9.9.9"  # re-saved by another release, reformatted
    (copy / "config.json").write_text(json.dumps(config, indent=4, sort_keys=True))
    assert BaseModelSpec.load(str(copy)).fingerprint == base_spec.fingerprint


def test_the_copy_runs_outside_the_registry_transaction(
    db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path
) -> None:
    """Copying up to max_adapter_bytes must not hold the adapter's row lock (PostgreSQL) or the
    database's write lock (SQLite): the traffic-log drain and other imports write meanwhile."""
    seen: list[str] = []

    class ProbesLocks(LocalArtifactStore):
        def put(self, source: Path, *, name: str, sha256: str) -> str:
            with db.connect() as other, other.begin():
                if db.dialect.name == "sqlite":
                    other.execute(text("PRAGMA busy_timeout=0"))
                    other.execute(text("UPDATE registry_state SET generation = generation"))
                else:
                    other.execute(text("SET LOCAL lock_timeout = '100ms'"))
                    other.execute(text("SELECT id FROM adapter WHERE name = :n FOR UPDATE"), {"n": name})
            seen.append(name)
            return super().put(source, name=name, sha256=sha256)

    store = ProbesLocks(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    with Session(db) as session:
        for _ in range(2):  # a new adapter, then a new version of an existing one
            _register(session, store, source, base_spec)
    assert seen == ["bot", "bot"]

"""Registration is all or nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base_model import BaseModelSpec
from adapters.exceptions import AdapterConflict, AdapterNotFound, InvalidAdapter
from adapters.models import Adapter, AdapterVersion, VersionStatus
from adapters.registry import get_servable, register_version, routing_table
from adapters.store import LocalArtifactStore
from adapters.validation import EngineLimits
from tests.utils.adapters import edit_config, good_adapter

LIMITS = EngineLimits(max_lora_rank=16, max_adapter_bytes=10 * 1024 * 1024)


def test_register_activate_and_resolve(db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    with Session(db) as session:
        first = register_version(
            session=session, store=store, name="bot", source=source, base=base_spec, limits=LIMITS, activate=True
        )
        second = register_version(
            session=session, store=store, name="bot", source=source, base=base_spec, limits=LIMITS
        )
        assert (first.version, second.version) == (1, 2) and first.id != second.id
        assert second.status == VersionStatus.candidate and first.status == VersionStatus.active
        route = routing_table(session=session, store=store, base_fingerprint=base_spec.fingerprint)["bot"]
        assert route.active is not None and route.canary is None
        assert route.active.version == 1 and route.active.qualified_name == "bot@1"
        assert (route.active.path / "adapter_model.safetensors").is_file()
        assert (
            get_servable(
                session=session, store=store, name="bot", version=2, base_fingerprint=base_spec.fingerprint
            ).version_id
            == second.id
        )
        with pytest.raises(AdapterNotFound):
            get_servable(session=session, store=store, name="bot", version=3, base_fingerprint=base_spec.fingerprint)
        # After the served base changes, versions built for the old one are neither routed nor pinnable;
        # they exist, so that is a conflict with their state, not a missing version.
        assert routing_table(session=session, store=store, base_fingerprint="another-base") == {}
        with pytest.raises(AdapterConflict):
            get_servable(session=session, store=store, name="bot", version=1, base_fingerprint="another-base")


def test_invalid_adapter_changes_nothing(
    db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    bad = edit_config(good_adapter(demo_model, tmp_path / "src"), r=64)
    with Session(db) as session:
        with pytest.raises(InvalidAdapter):
            register_version(session=session, store=store, name="bot", source=bad, base=base_spec, limits=LIMITS)
        with pytest.raises(InvalidAdapter):
            register_version(session=session, store=store, name="Bad Name", source=bad, base=base_spec, limits=LIMITS)
        assert session.exec(select(Adapter)).all() == [] and session.exec(select(AdapterVersion)).all() == []
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*"))


def test_a_version_cannot_claim_another_tenant(
    db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    with Session(db) as session:
        register_version(
            session=session, store=store, name="acme-bot", source=source, base=base_spec, limits=LIMITS, tenant="acme"
        )
        with pytest.raises(AdapterConflict, match="another tenant"):
            register_version(
                session=session,
                store=store,
                name="acme-bot",
                source=source,
                base=base_spec,
                limits=LIMITS,
                tenant="globex",
            )
        same = register_version(
            session=session, store=store, name="acme-bot", source=source, base=base_spec, limits=LIMITS, tenant="acme"
        )
        assert same.version == 2
        assert session.exec(select(Adapter).where(Adapter.name == "acme-bot")).one().tenant == "acme"

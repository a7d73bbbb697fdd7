"""The router against a real registry and a stand-in engine that refuses on demand: an alias whose
new version the engine refuses keeps its previous route, the replica reports that it lags, and
a later retry catches up; keys see only what their tenant may; pinned candidates need evaluation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import Session

from adapters import lifecycle
from adapters.base_model import BaseModelSpec
from adapters.registry import register_version
from adapters.store import LocalArtifactStore
from adapters.validation import EngineLimits
from gateway.auth.models import ADMIN, Principal
from gateway.exceptions import EngineUnavailable, ModelNotFound
from gateway.routing import ModelRouter
from tests.gateway.engine.fakes import RecordingEngine
from tests.utils.adapters import good_adapter
from tests.utils.db import sqlite_engine

LIMITS = EngineLimits(max_lora_rank=16, max_adapter_bytes=64 << 20)
ACME = Principal(key_id=1, name="acme", tenant="acme", allowed_adapters=("*",))
GLOBEX = Principal(key_id=2, name="globex", tenant="globex", allowed_adapters=("*",))


@pytest.fixture
def setup(tmp_path: Path, demo_model: Path, base_spec: BaseModelSpec):  # type: ignore[no-untyped-def]
    with sqlite_engine(tmp_path) as db:
        store = LocalArtifactStore(tmp_path / "store")
        with Session(db) as session:
            for seed in (1, 2):
                register_version(
                    session=session,
                    store=store,
                    name="lag-bot",
                    source=good_adapter(demo_model, tmp_path / f"s{seed}", seed=seed),
                    base=base_spec,
                    limits=LIMITS,
                    tenant="acme",
                    activate=True,
                )
        engine = RecordingEngine()
        engine.ready = True
        router = ModelRouter(
            base_model_name="demo-base",
            base_fingerprint=base_spec.fingerprint,
            db=db,
            store=store,
            engine=engine,
            max_loras=2,
            warm_retry_max_s=1,
        )
        yield db, engine, router


async def test_a_refused_version_leaves_the_alias_on_its_route_until_a_retry_loads_it(setup) -> None:  # type: ignore[no-untyped-def]
    db, engine, router = setup
    await router.refresh()
    assert (await router.resolve("lag-bot", ACME)).version.version == 1  # type: ignore[union-attr]
    assert router.lagging == []
    v1_id = router._routes["lag-bot"].active.version_id  # type: ignore[union-attr]
    engine.refuse.add(v1_id + 1)  # version 2's engine id
    with Session(db) as session:
        lifecycle.promote(session=session, name="lag-bot", version=2)
    assert await router.refresh()
    target = await router.resolve("lag-bot", ACME)
    assert target.version.version == 1  # type: ignore[union-attr]
    router.leave(target)
    assert router.lagging == ["lag-bot@2"]
    with pytest.raises(EngineUnavailable, match="could not load 'lag-bot@2'"):
        await router.resolve("lag-bot@2", ACME)
    assert not await router.refresh()  # within the backoff: the engine is not asked again
    engine.refuse.clear()
    await asyncio.sleep(1.05)
    assert await router.refresh()
    assert router.lagging == []
    assert (await router.resolve("lag-bot", ACME)).version.version == 2  # type: ignore[union-attr]


async def test_tenants_and_statuses_decide_who_may_call(setup) -> None:  # type: ignore[no-untyped-def]
    db, _engine, router = setup
    await router.refresh()
    for model in ("lag-bot", "lag-bot@1", "lag-bot@2"):
        with pytest.raises(ModelNotFound):
            await router.resolve(model, GLOBEX)
    assert [c.id for c in router.models_for(GLOBEX)] == ["demo-base"]
    assert [c.id for c in router.models_for(ACME)] == ["demo-base", "lag-bot"]
    with pytest.raises(ModelNotFound):  # a candidate: evaluation rights only
        await router.resolve("lag-bot@2", ACME)
    evaluator = Principal(key_id=3, name="eval", tenant="acme", allowed_adapters=("*",), scopes=frozenset({"evaluate"}))  # type: ignore[arg-type]
    assert (await router.resolve("lag-bot@2", evaluator)).version.version == 2  # type: ignore[union-attr]
    with Session(db) as session:
        lifecycle.reject(session=session, name="lag-bot", version=2, reason="worse")
    assert (await router.resolve("lag-bot@2", ADMIN)).version.status == "rejected"  # type: ignore[union-attr]
    with pytest.raises(ModelNotFound):
        await router.resolve("lag-bot@2", ACME)
    v2_id = router._routes["lag-bot"].active.version_id + 1  # type: ignore[union-attr]
    assert router.in_flight(v2_id) == 2  # the two that resolved; refusals count nothing

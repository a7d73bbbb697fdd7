"""The key cache: fresh answers from memory, revocation visibility, stale answers during an
outage, and a bound that a flood of made-up keys cannot use to push real keys out."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event
from sqlmodel import Session

from gateway.auth import crud
from gateway.auth.models import ADMIN as ADMIN_PRINCIPAL
from gateway.auth.models import ApiKeyCreate, KeyScope, Principal
from gateway.auth.service import AuthService
from gateway.exceptions import AuthenticationFailed, ServiceUnavailable
from switchyard.config import AuthSettings
from switchyard.db import make_engine
from tests.utils.db import sqlite_engine

ADMIN = "admin-key-0123456789abcdef"
METRICS = "metrics-token-0123456789abcdef"


def service(db, *, ttl_s: float, stale_s: float = 3600, max_keys: int = 100) -> AuthService:  # type: ignore[no-untyped-def]
    settings = AuthSettings(cache_ttl_s=ttl_s, cache_stale_s=stale_s, cache_max_keys=max_keys)
    return AuthService(db=db, admin_key=ADMIN, metrics_token=METRICS, settings=settings)


async def test_cache_ttl_revocation_and_admin(tmp_path: Path) -> None:
    with sqlite_engine(tmp_path) as db:
        with Session(db) as session:
            row, secret = crud.create_key(session=session, key_in=ApiKeyCreate(name="svc", allowed_adapters=["a"]))
        cached = service(db, ttl_s=3600)
        uncached = service(db, ttl_s=0)
        assert (await cached.authenticate(ADMIN)).is_admin
        principal = await cached.authenticate(secret)
        assert principal.key_id == row.id
        assert principal.may_use("a", tenant=None, shared=False) and not principal.may_use(
            "b", tenant=None, shared=False
        )
        with Session(db) as session:
            crud.revoke_key(session=session, key_id=row.id)  # as another process would
        assert (await cached.authenticate(secret)).key_id == row.id  # within the TTL
        with pytest.raises(AuthenticationFailed):
            await uncached.authenticate(secret)
        cached.forget(row.id)  # what the admin route does after revoking
        with pytest.raises(AuthenticationFailed):
            await cached.authenticate(secret)
        for missing in (None, "", "sk-sy-nope"):
            with pytest.raises(AuthenticationFailed):
                await cached.authenticate(missing)


async def test_a_flood_of_unknown_keys_never_evicts_a_valid_one(tmp_path: Path) -> None:
    with sqlite_engine(tmp_path) as db:
        with Session(db) as session:
            _, secret = crud.create_key(session=session, key_in=ApiKeyCreate(name="svc"))
        auth = service(db, ttl_s=3600, max_keys=4)
        assert (await auth.authenticate(secret)).name == "svc"
        for i in range(50):
            with pytest.raises(AuthenticationFailed):
                await auth.authenticate(f"sk-sy-made-up-{i}")
        lookups: list[str] = []
        event.listen(db, "before_cursor_execute", lambda *args: lookups.append(args[2]))
        assert (await auth.authenticate(secret)).name == "svc"
        assert lookups == [], "the valid key was evicted by unknown ones and looked up again"


async def test_metrics_token_is_not_a_key(tmp_path: Path) -> None:
    with sqlite_engine(tmp_path) as db:
        auth = service(db, ttl_s=10)
        assert auth.is_metrics_token(METRICS)
        assert not auth.is_metrics_token(ADMIN) and not auth.is_metrics_token(None)
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(METRICS)


async def test_outage_serves_stale_answers_and_refuses_unknown_keys(tmp_path: Path) -> None:
    with sqlite_engine(tmp_path) as db:
        with Session(db) as session:
            _, secret = crud.create_key(session=session, key_in=ApiKeyCreate(name="svc"))
        auth = service(db, ttl_s=0)
        assert await auth.authenticate(secret)
        auth._db = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1")  # outage
        assert (await auth.authenticate(secret)).name == "svc"
        with pytest.raises(ServiceUnavailable):
            await auth.authenticate("sk-sy-never-seen")
        auth._stale_s = 0
        with pytest.raises(ServiceUnavailable):
            await auth.authenticate(secret)
        auth._db.dispose()


@pytest.mark.parametrize(
    ("principal", "adapter_tenant", "shared", "allowed"),
    [
        (Principal(key_id=1, name="k", tenant="acme", allowed_adapters=("*",)), "acme", False, True),
        (Principal(key_id=1, name="k", tenant="acme", allowed_adapters=("*",)), "globex", False, False),
        (Principal(key_id=1, name="k", tenant="acme", allowed_adapters=("*",)), "globex", True, True),
        (Principal(key_id=1, name="k", tenant="acme", allowed_adapters=("bot",)), "acme", False, True),
        (Principal(key_id=1, name="k", tenant="acme", allowed_adapters=()), "acme", False, False),
        (Principal(key_id=1, name="k", tenant=None, allowed_adapters=("*",)), "acme", False, False),
        (Principal(key_id=1, name="k", tenant=None, allowed_adapters=("*",)), None, False, True),
        (ADMIN_PRINCIPAL, "globex", False, True),
    ],
)
def test_tenancy_and_allowlist(principal: Principal, adapter_tenant: str | None, shared: bool, allowed: bool) -> None:
    assert principal.may_use("bot", tenant=adapter_tenant, shared=shared) is allowed


def test_scopes() -> None:
    plain = Principal(key_id=1, name="k")
    assert not plain.may_evaluate and not plain.is_reviewer
    both = Principal(key_id=1, name="k", scopes=frozenset({KeyScope.evaluate, KeyScope.review}))
    assert both.may_evaluate and both.is_reviewer
    assert ADMIN_PRINCIPAL.may_evaluate and ADMIN_PRINCIPAL.is_reviewer

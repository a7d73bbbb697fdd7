"""The key cache: fresh answers from memory, revocation visibility, and stale answers during an outage."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from gateway.auth import crud
from gateway.auth.models import ApiKeyCreate
from gateway.auth.service import AuthService
from gateway.exceptions import AuthenticationFailed, ServiceUnavailable
from switchyard.db import make_engine
from tests.utils.db import sqlite_engine

ADMIN = "admin-key-0123456789abcdef"


async def test_cache_ttl_revocation_and_admin(tmp_path: Path) -> None:
    with sqlite_engine(tmp_path) as db:
        with Session(db) as session:
            row, secret = crud.create_key(session=session, key_in=ApiKeyCreate(name="svc", allowed_adapters=["a"]))
        cached = AuthService(db=db, admin_key=ADMIN, ttl_s=3600, stale_s=3600)
        uncached = AuthService(db=db, admin_key=ADMIN, ttl_s=0, stale_s=3600)
        assert (await cached.authenticate(ADMIN)).is_admin
        principal = await cached.authenticate(secret)
        assert principal.key_id == row.id and principal.may_use("a") and not principal.may_use("b")
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


async def test_outage_serves_stale_answers_and_refuses_unknown_keys(tmp_path: Path) -> None:
    with sqlite_engine(tmp_path) as db:
        with Session(db) as session:
            _, secret = crud.create_key(session=session, key_in=ApiKeyCreate(name="svc"))
        service = AuthService(db=db, admin_key=ADMIN, ttl_s=0, stale_s=3600)
        assert await service.authenticate(secret)
        service._db = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1")  # outage
        assert (await service.authenticate(secret)).name == "svc"
        with pytest.raises(ServiceUnavailable):
            await service.authenticate("sk-sy-never-seen")
        service._stale_s = 0
        with pytest.raises(ServiceUnavailable):
            await service.authenticate(secret)
        service._db.dispose()

"""Key CRUD on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from gateway.auth import crud
from gateway.auth.models import ApiKeyCreate


def test_create_lookup_revoke(db: Engine) -> None:
    with Session(db) as session:
        row, secret = crud.create_key(
            session=session, key_in=ApiKeyCreate(name="svc", tenant="t1", allowed_adapters=["a", "b"])
        )
        assert secret.startswith(crud.KEY_PREFIX) and row.key_hash == crud.hash_key(secret)
        assert row.key_prefix == secret[:12] and secret not in row.key_hash
        found = crud.get_active_key(session=session, secret=secret)
        assert found is not None and found.allowed_adapters == ["a", "b"] and found.tenant == "t1"
        assert crud.get_active_key(session=session, secret=secret + "x") is None
        revoked = crud.revoke_key(session=session, key_id=row.id)
        assert revoked is not None and revoked.revoked_at is not None
        assert crud.get_active_key(session=session, secret=secret) is None
        assert crud.revoke_key(session=session, key_id=10_000) is None
        rows, total = crud.list_keys(session=session)
        assert total == 1 and rows[0].id == row.id

"""Key CRUD. Keys are random 256-bit tokens, so a plain SHA-256 is a sufficient at-rest hash
(a slow KDF protects guessable passwords, which these are not) and lets lookups use an index."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import func
from sqlmodel import Session, select

from gateway.auth.models import ApiKey, ApiKeyCreate
from switchyard.db import utcnow

KEY_PREFIX = "sk-sy-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(*, session: Session, key_in: ApiKeyCreate) -> tuple[ApiKey, str]:
    """Store a new key; return the row and the plain-text secret (which is not stored)."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey.model_validate(key_in, update={"key_hash": hash_key(secret), "key_prefix": secret[:12]})
    session.add(row)
    session.commit()
    session.refresh(row)
    return row, secret


def get_active_key(*, session: Session, secret: str) -> ApiKey | None:
    statement = select(ApiKey).where(ApiKey.key_hash == hash_key(secret), ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
    return session.exec(statement).first()


def list_keys(*, session: Session, offset: int = 0, limit: int = 100) -> tuple[list[ApiKey], int]:
    count = session.exec(select(func.count()).select_from(ApiKey)).one()
    rows = session.exec(select(ApiKey).order_by(ApiKey.id).offset(offset).limit(limit)).all()  # type: ignore[arg-type]
    return list(rows), count


def revoke_key(*, session: Session, key_id: int) -> ApiKey | None:
    row = session.get(ApiKey, key_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        session.commit()
        session.refresh(row)
    return row

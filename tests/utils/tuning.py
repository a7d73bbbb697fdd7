"""Factories for tuning tests: adapter rows (no versions needed to hold a policy or a job)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from adapters.models import Adapter
from switchyard.db import session_scope


def add_adapter(db: Engine, name: str, *, tenant: str | None = None) -> Adapter:
    with session_scope(db) as session:
        row = Adapter(name=name, tenant=tenant)
        session.add(row)
        session.commit()
        session.refresh(row)
        return row

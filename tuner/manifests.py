"""Queries on curation manifests."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from tuner.models import CurationManifest, CurationManifestCreate


def _tenant_is(tenant: str | None) -> ColumnElement[bool]:
    # None is a tenant of its own (keys without one), never "any tenant".
    return CurationManifest.tenant == tenant if tenant is not None else col(CurationManifest.tenant).is_(None)


def create_manifest(*, session: Session, manifest_in: CurationManifestCreate) -> CurationManifest:
    """Store a manifest; when the snapshot already has one (the same content curated twice, or by
    two processes at once), that one is returned, since the snapshot it describes is the same."""
    row = CurationManifest.model_validate(manifest_in)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = get_manifest(session=session, snapshot_id=manifest_in.snapshot_id)
        if existing is None:  # the conflict was something else
            raise
        return existing
    session.refresh(row)
    return row


def get_manifest(*, session: Session, snapshot_id: str) -> CurationManifest | None:
    return session.exec(select(CurationManifest).where(CurationManifest.snapshot_id == snapshot_id)).first()


def latest_manifest(*, session: Session, adapter: str, tenant: str | None) -> CurationManifest | None:
    """The newest snapshot of one adapter's traffic for one tenant."""
    return session.exec(
        select(CurationManifest)
        .where(CurationManifest.adapter == adapter, _tenant_is(tenant))
        .order_by(col(CurationManifest.created_at).desc(), col(CurationManifest.id).desc())
        .limit(1)
    ).first()


def list_manifests(
    *, session: Session, adapter: str, tenant: str | None, offset: int = 0, limit: int = 50
) -> tuple[list[CurationManifest], int]:
    """One adapter's snapshots for one tenant, newest first, and how many there are."""
    conditions = (CurationManifest.adapter == adapter, _tenant_is(tenant))
    count = session.exec(select(func.count()).select_from(CurationManifest).where(*conditions)).one()
    rows = session.exec(
        select(CurationManifest)
        .where(*conditions)
        .order_by(col(CurationManifest.created_at).desc(), col(CurationManifest.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), count

"""Registry operations: register a validated folder as a new version, look versions up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from adapters.base_model import BaseModelSpec
from adapters.errors import AdapterConflict, AdapterNotFound
from adapters.models import Adapter, AdapterVersion, VersionStatus, utcnow
from adapters.store import ArtifactStore
from adapters.validation import EngineLimits, validate_adapter_dir, validate_name


@dataclass(frozen=True)
class ServableVersion:
    """Everything the engine needs to serve one adapter version."""

    adapter: str
    version: int
    version_id: int
    path: Path
    tenant: str | None

    @property
    def qualified_name(self) -> str:
        return f"{self.adapter}@{self.version}"


def get_adapter(*, session: Session, name: str) -> Adapter | None:
    return session.exec(select(Adapter).where(Adapter.name == name)).first()


def list_adapters(*, session: Session) -> list[Adapter]:
    return list(session.exec(select(Adapter).order_by(Adapter.name)))


def register_version(
    *,
    session: Session,
    store: ArtifactStore,
    name: str,
    source: Path,
    base: BaseModelSpec,
    limits: EngineLimits,
    description: str = "",
    tenant: str | None = None,
    activate: bool = False,
) -> AdapterVersion:
    """Validate ``source``, copy it into the store and record it, all or nothing."""
    validate_name(name)
    manifest = validate_adapter_dir(source, base=base, limits=limits)
    adapter = get_adapter(session=session, name=name)
    if adapter is None:
        adapter = Adapter(name=name, description=description, tenant=tenant)
        session.add(adapter)
        session.flush()
    latest = session.exec(select(func.max(AdapterVersion.version)).where(AdapterVersion.adapter_id == adapter.id)).one()
    number = (latest or 0) + 1
    uri = store.put(source, name=name, version=number)
    try:
        version = AdapterVersion(
            adapter_id=adapter.id,
            version=number,
            status=VersionStatus.active if activate else VersionStatus.candidate,
            artifact_uri=uri,
            sha256=manifest.sha256,
            rank=manifest.rank,
            alpha=manifest.alpha,
            target_modules=manifest.target_modules,
            base_fingerprint=base.fingerprint,
            size_bytes=manifest.size_bytes,
            promoted_at=utcnow() if activate else None,
        )
        session.add(version)
        session.flush()
        if activate:
            adapter.active_version_id = version.id
            session.add(adapter)
        session.commit()
    except IntegrityError:
        session.rollback()
        store.delete(uri)
        raise AdapterConflict(f"adapter {name!r} was registered concurrently; retry", param="name") from None
    except BaseException:
        session.rollback()
        store.delete(uri)
        raise
    session.refresh(version)
    return version


def servable_versions(*, session: Session, store: ArtifactStore) -> dict[str, ServableVersion]:
    """Every adapter's active version, keyed by adapter name."""
    rows = session.exec(
        select(Adapter, AdapterVersion).join(AdapterVersion, AdapterVersion.id == Adapter.active_version_id)
    ).all()
    return {adapter.name: _servable(adapter, version, store) for adapter, version in rows}


def get_servable(*, session: Session, store: ArtifactStore, name: str, version: int) -> ServableVersion:
    """A pinned version (``name@version``) that is not rejected."""
    row = session.exec(
        select(Adapter, AdapterVersion)
        .join(AdapterVersion, AdapterVersion.adapter_id == Adapter.id)
        .where(Adapter.name == name, AdapterVersion.version == version)
        .where(AdapterVersion.status != VersionStatus.rejected)
    ).first()
    if row is None:
        raise AdapterNotFound(f"adapter {name}@{version} does not exist", param="model")
    return _servable(row[0], row[1], store)


def _servable(adapter: Adapter, version: AdapterVersion, store: ArtifactStore) -> ServableVersion:
    assert adapter.id is not None and version.id is not None
    return ServableVersion(
        adapter=adapter.name,
        version=version.version,
        version_id=version.id,
        path=store.local_path(version.artifact_uri),
        tenant=adapter.tenant,
    )

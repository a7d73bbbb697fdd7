"""Registry reads and registration: validate, store, record — all or nothing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from adapters.base_model import BaseModelSpec
from adapters.exceptions import AdapterConflict, AdapterNotFound, ArtifactCorrupt, InvalidAdapter
from adapters.models import (
    Adapter,
    AdapterDetail,
    AdapterEvent,
    AdapterPublic,
    AdapterVersion,
    AdapterVersionPublic,
    RegistryState,
    VersionStatus,
    utcnow,
)
from adapters.notify import announce_change
from adapters.store import ArtifactStore
from adapters.validation import EngineLimits, validate_adapter_dir, validate_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServableVersion:
    """Everything the engine needs to serve one adapter version."""

    adapter: str
    version: int
    version_id: int
    path: Path
    tenant: str | None
    shared: bool
    status: VersionStatus
    """Only ``active`` and ``canary`` versions serve ordinary keys; the others need evaluation rights."""

    @property
    def qualified_name(self) -> str:
        return f"{self.adapter}@{self.version}"


@dataclass(frozen=True)
class AliasRoute:
    """Where an alias sends traffic: its active version, and optionally a weighted canary."""

    active: ServableVersion | None
    canary: ServableVersion | None = None
    canary_weight: float = 0.0
    pinned: bool = False

    @property
    def versions(self) -> tuple[ServableVersion, ...]:
        return tuple(v for v in (self.active, self.canary) if v is not None)


def bump_generation(session: Session) -> None:
    """Mark the registry changed (inside the caller's transaction); atomic under concurrency."""
    result = session.exec(update(RegistryState).values(generation=RegistryState.generation + 1))  # type: ignore[call-overload]
    if result.rowcount == 0:
        session.add(RegistryState(id=1, generation=1))
    announce_change(session)


def registry_generation(*, session: Session) -> int:
    state = session.get(RegistryState, 1)
    return state.generation if state else 0


def record_event(session: Session, adapter: Adapter, action: str, version: int | None, **detail: Any) -> None:
    assert adapter.id is not None
    session.add(AdapterEvent(adapter_id=adapter.id, action=action, version=version, detail=detail))


def get_adapter(*, session: Session, name: str, for_update: bool = False) -> Adapter | None:
    statement = select(Adapter).where(Adapter.name == name)
    if for_update:
        # Re-read the locked row even if this session holds an older copy of it: decisions taken
        # under the lock (the next version number, the alias's routing) must see its latest state.
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return session.exec(statement).first()


def require_adapter(*, session: Session, name: str, for_update: bool = False) -> Adapter:
    adapter = get_adapter(session=session, name=name, for_update=for_update)
    if adapter is None:
        raise AdapterNotFound(f"adapter {name!r} does not exist", param="name")
    return adapter


def require_version(*, session: Session, adapter: Adapter, version: int) -> AdapterVersion:
    row = session.exec(
        select(AdapterVersion).where(AdapterVersion.adapter_id == adapter.id, AdapterVersion.version == version)
    ).first()
    if row is None:
        raise AdapterNotFound(f"adapter {adapter.name}@{version} does not exist", param="version")
    return row


def version_by_id(*, session: Session, version_id: int | None) -> AdapterVersion | None:
    return session.get(AdapterVersion, version_id) if version_id is not None else None


def list_adapters(*, session: Session, offset: int = 0, limit: int = 1000) -> tuple[list[Adapter], int]:
    count = session.exec(select(func.count()).select_from(Adapter)).one()
    rows = session.exec(select(Adapter).order_by(Adapter.name).offset(offset).limit(limit)).all()
    return list(rows), count


def list_events(
    *, session: Session, adapter: Adapter, offset: int = 0, limit: int = 100
) -> tuple[list[AdapterEvent], int]:
    """The adapter's audit trail, oldest first, and how many events it holds in all."""
    where = AdapterEvent.adapter_id == adapter.id
    count = session.exec(select(func.count()).select_from(AdapterEvent).where(where)).one()
    rows = session.exec(select(AdapterEvent).where(where).order_by(AdapterEvent.id).offset(offset).limit(limit)).all()
    return list(rows), count


def list_versions(*, session: Session, adapter: Adapter) -> list[AdapterVersion]:
    return list(
        session.exec(
            select(AdapterVersion).where(AdapterVersion.adapter_id == adapter.id).order_by(AdapterVersion.version)
        )
    )


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
    shared: bool = False,
    activate: bool = False,
    parent_version: int | None = None,
    dataset_snapshot_id: str | None = None,
    metrics: dict[str, Any] | None = None,
    source_label: str | None = None,
    source_param: str = "source",
    reserved_names: frozenset[str] = frozenset(),
) -> AdapterVersion:
    """Validate ``source``, copy it into the store and record it as a candidate (or, for a
    brand-new alias with ``activate``, as its active version). Nothing is left behind on failure.

    ``reserved_names`` are model names an adapter may not take (the served base model's);
    ``source_param`` is the request field that validation errors point at."""
    validate_name(name)
    if name.casefold() in {reserved.casefold() for reserved in reserved_names}:
        raise InvalidAdapter(f"{name!r} is the name of the served base model; choose another name", param="name")
    manifest = validate_adapter_dir(source, base=base, limits=limits, param=source_param)
    # Copied before the transaction: the adapter's row lock (on SQLite, the database's write
    # lock) is held only for the few statements that record the version, never for a copy of
    # up to max_adapter_bytes. A crash after the copy leaves unreferenced files, no rows.
    try:
        uri = store.put(source, name=name, sha256=manifest.sha256)
    except ArtifactCorrupt:
        raise InvalidAdapter(
            "the adapter's files changed while it was being imported; retry", param=source_param
        ) from None
    try:
        adapter = get_adapter(session=session, name=name, for_update=True)
        if adapter is None:
            adapter = Adapter(name=name, description=description, tenant=tenant, shared=shared)
            session.add(adapter)
            session.flush()
        elif tenant is not None and tenant != adapter.tenant:
            # A version belongs to its adapter's tenant; saying otherwise is a mistake to report.
            raise AdapterConflict(f"adapter {name!r} belongs to another tenant", param="tenant")
        # Taken from the locked row and committed with the version: numbers never go back, even
        # when the newest version is deleted, so name@N never comes to mean other weights.
        number = adapter.next_version
        adapter.next_version = number + 1
        session.add(adapter)
        activate_now = activate and adapter.active_version_id is None
        version = AdapterVersion(
            adapter_id=adapter.id,
            version=number,
            status=VersionStatus.active if activate_now else VersionStatus.candidate,
            artifact_uri=uri,
            sha256=manifest.sha256,
            config_sha256=manifest.digest.config_sha256,
            weights_sha256=manifest.digest.weights_sha256,
            rank=manifest.rank,
            alpha=manifest.alpha,
            target_modules=manifest.target_modules,
            base_fingerprint=base.fingerprint,
            size_bytes=manifest.size_bytes,
            parent_version=parent_version,
            dataset_snapshot_id=dataset_snapshot_id,
            metrics=metrics or {},
            source=source_label,
            promoted_at=utcnow() if activate_now else None,
        )
        session.add(version)
        session.flush()
        if activate_now:
            adapter.active_version_id = version.id
            session.add(adapter)
            bump_generation(session)
        record_event(session, adapter, "register", number, sha256=manifest.sha256, source=source_label)
        session.commit()
    except IntegrityError:
        session.rollback()
        store.delete(uri)
        raise AdapterConflict(f"adapter {name!r} was changed concurrently; retry", param="name") from None
    except BaseException:
        session.rollback()
        store.delete(uri)
        raise
    session.refresh(version)
    return version


def _servable(adapter: Adapter, version: AdapterVersion, store: ArtifactStore) -> ServableVersion:
    assert version.id is not None
    return ServableVersion(
        adapter=adapter.name,
        version=version.version,
        version_id=version.id,
        path=store.local_path(version.artifact_uri, sha256=version.sha256),
        tenant=adapter.tenant,
        shared=adapter.shared,
        status=version.status,
    )


def _route(adapter: Adapter, versions: dict[int | None, AdapterVersion], store: ArtifactStore) -> AliasRoute | None:
    active = versions.get(adapter.active_version_id)
    canary = versions.get(adapter.canary_version_id)
    served_active = served_canary = None
    try:
        served_active = _servable(adapter, active, store) if active else None
        served_canary = _servable(adapter, canary, store) if canary else None
    except ArtifactCorrupt as exc:
        # Never serve other weights than the ones registered: the alias is left out until repaired.
        logger.error("alias %s is not routed: %s", adapter.name, exc.message)
        return None
    if served_active is None and served_canary is None:
        return None
    return AliasRoute(
        active=served_active,
        canary=served_canary,
        canary_weight=adapter.canary_weight if served_canary else 0.0,
        pinned=adapter.pinned,
    )


def routing_table(*, session: Session, store: ArtifactStore, base_fingerprint: str) -> dict[str, AliasRoute]:
    """Every alias with an active version or a canary, keyed by name. Versions built for another
    base model (the served base was changed since) are left out: they would load, and be wrong.
    So are aliases whose stored files no longer match their sha256."""
    adapters = session.exec(select(Adapter)).all()
    wanted = {i for a in adapters for i in (a.active_version_id, a.canary_version_id) if i is not None}
    rows = session.exec(select(AdapterVersion).where(AdapterVersion.id.in_(wanted))).all() if wanted else []  # type: ignore[union-attr]
    versions: dict[int | None, AdapterVersion] = {v.id: v for v in rows if v.base_fingerprint == base_fingerprint}
    for stale in (v for v in rows if v.base_fingerprint != base_fingerprint):
        logger.warning("version id %s was built for another base model; it is not routed", stale.id)
    table: dict[str, AliasRoute] = {}
    for adapter in adapters:
        route = _route(adapter, versions, store)
        if route is not None:
            table[adapter.name] = route
    return table


def get_servable(
    *, session: Session, store: ArtifactStore, name: str, version: int, base_fingerprint: str
) -> ServableVersion:
    """A pinned version (``name@version``).

    :class:`AdapterNotFound` if there is none; :class:`AdapterConflict` if it exists but its
    state forbids serving it (rejected, or built for another base model);
    :class:`ArtifactCorrupt` if its stored files no longer match its sha256.
    """
    row = session.exec(
        select(Adapter, AdapterVersion)
        .join(AdapterVersion, AdapterVersion.adapter_id == Adapter.id)
        .where(Adapter.name == name, AdapterVersion.version == version)
    ).first()
    if row is None:
        raise AdapterNotFound(f"adapter {name}@{version} does not exist", param="model")
    adapter, found = row
    if found.status == VersionStatus.rejected:
        raise AdapterConflict(f"{name}@{version} was rejected and cannot be served", param="model")
    if found.base_fingerprint != base_fingerprint:
        raise AdapterConflict(f"{name}@{version} was built for another base model than the one served", param="model")
    return _servable(adapter, found, store)


def describe(*, session: Session, adapter: Adapter, with_versions: bool = True) -> AdapterDetail | AdapterPublic:
    """The public view of an adapter: version numbers rather than internal ids."""
    versions = list_versions(session=session, adapter=adapter)
    number = {v.id: v.version for v in versions}
    public = AdapterPublic.model_validate(
        adapter,
        update={
            "active_version": number.get(adapter.active_version_id),
            "canary_version": number.get(adapter.canary_version_id),
        },
    )
    if not with_versions:
        return public
    return AdapterDetail.model_validate(
        public, update={"versions": [AdapterVersionPublic.model_validate(v) for v in versions]}
    )

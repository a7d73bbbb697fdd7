"""Lifecycle transitions. Each one is a single transaction that also bumps the registry
generation, so every gateway (this process or another) sees the alias move at once or not at all."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from adapters.exceptions import AdapterConflict, InvalidAdapter
from adapters.models import Adapter, AdapterVersion, VersionStatus
from adapters.registry import (
    bump_generation,
    record_event,
    require_adapter,
    require_version,
    version_by_id,
)
from adapters.store import ArtifactStore
from switchyard.db import utcnow


def _commit(session: Session, adapter: Adapter, *rows: AdapterVersion) -> Adapter:
    session.add(adapter)
    for row in rows:
        session.add(row)
    bump_generation(session)
    session.commit()
    session.refresh(adapter)
    return adapter


def _clear_canary(session: Session, adapter: Adapter) -> None:
    canary = version_by_id(session=session, version_id=adapter.canary_version_id)
    if canary is not None and canary.status == VersionStatus.canary:
        canary.status = VersionStatus.candidate
        session.add(canary)
    adapter.canary_version_id = None
    adapter.canary_weight = 0.0


def promote(*, session: Session, name: str, version: int) -> Adapter:
    """Make ``version`` the alias's active version; the previous active is retired (still loadable)."""
    adapter = require_adapter(session=session, name=name, for_update=True)
    target = require_version(session=session, adapter=adapter, version=version)
    if target.status == VersionStatus.rejected:
        raise AdapterConflict(f"{name}@{version} was rejected and cannot be promoted", param="version")
    if adapter.active_version_id == target.id:
        return adapter
    old = version_by_id(session=session, version_id=adapter.active_version_id)
    if old is not None:
        old.status = VersionStatus.retired
        session.add(old)
    if adapter.canary_version_id == target.id:
        adapter.canary_version_id, adapter.canary_weight = None, 0.0
    target.status = VersionStatus.active
    target.promoted_at = utcnow()
    adapter.previous_version_id = old.id if old else None
    adapter.active_version_id = target.id
    record_event(session, adapter, "promote", version, previous=old.version if old else None)
    return _commit(session, adapter, target)


def rollback(*, session: Session, name: str) -> Adapter:
    """Return the previous active version; the version rolled back from becomes the new 'previous'."""
    adapter = require_adapter(session=session, name=name, for_update=True)
    previous = version_by_id(session=session, version_id=adapter.previous_version_id)
    if previous is None:
        raise AdapterConflict(f"adapter {name!r} has no previous version to roll back to", param="name")
    if previous.status == VersionStatus.rejected:
        raise AdapterConflict(f"{name}@{previous.version} was rejected; promote another version", param="name")
    current = version_by_id(session=session, version_id=adapter.active_version_id)
    if current is not None:
        current.status = VersionStatus.retired
        session.add(current)
    previous.status = VersionStatus.active
    previous.promoted_at = utcnow()
    adapter.active_version_id, adapter.previous_version_id = previous.id, current.id if current else None
    record_event(session, adapter, "rollback", previous.version, rolled_back=current.version if current else None)
    return _commit(session, adapter, previous)


def set_canary(*, session: Session, name: str, version: int, weight: float) -> Adapter:
    """Route ``weight`` of the alias's traffic to ``version``; weight 0 ends the canary."""
    if not 0.0 <= weight <= 1.0:
        raise InvalidAdapter("canary weight must be between 0 and 1", param="weight")
    adapter = require_adapter(session=session, name=name, for_update=True)
    target = require_version(session=session, adapter=adapter, version=version)
    if weight == 0.0:
        if adapter.canary_version_id == target.id:
            _clear_canary(session, adapter)
            record_event(session, adapter, "canary_end", version)
            return _commit(session, adapter)
        return adapter
    if adapter.active_version_id is None:
        raise AdapterConflict(f"adapter {name!r} has no active version to split traffic with", param="name")
    if target.id == adapter.active_version_id:
        raise AdapterConflict(f"{name}@{version} is already active", param="version")
    if target.status == VersionStatus.rejected:
        raise AdapterConflict(f"{name}@{version} was rejected", param="version")
    if adapter.canary_version_id not in (None, target.id):
        _clear_canary(session, adapter)
    target.status = VersionStatus.canary
    adapter.canary_version_id, adapter.canary_weight = target.id, weight
    record_event(session, adapter, "canary", version, weight=weight)
    return _commit(session, adapter, target)


def _leave_routing(adapter: Adapter, target: AdapterVersion) -> None:
    if target.id == adapter.active_version_id:
        raise AdapterConflict(
            f"{adapter.name}@{target.version} is active; promote another version first", param="version"
        )
    if target.id == adapter.canary_version_id:
        adapter.canary_version_id, adapter.canary_weight = None, 0.0
    if target.id == adapter.previous_version_id:
        adapter.previous_version_id = None


def _take_out_of_routing(
    session: Session, name: str, version: int, status: VersionStatus, action: str, **detail: str
) -> AdapterVersion:
    adapter = require_adapter(session=session, name=name, for_update=True)
    target = require_version(session=session, adapter=adapter, version=version)
    _leave_routing(adapter, target)
    target.status = status
    record_event(session, adapter, action, version, **detail)
    _commit(session, adapter, target)
    session.refresh(target)
    return target


def retire(*, session: Session, name: str, version: int) -> AdapterVersion:
    """Take a non-active version out of routing; it stays stored and pinnable with ``@``."""
    return _take_out_of_routing(session, name, version, VersionStatus.retired, "retire")


def reject(*, session: Session, name: str, version: int, reason: str) -> AdapterVersion:
    """The evaluation gate's verdict: never routed, never promoted."""
    return _take_out_of_routing(session, name, version, VersionStatus.rejected, "reject", reason=reason)


def delete_version(*, session: Session, store: ArtifactStore, name: str, version: int) -> int:
    """Remove a non-active version and its artifact; return its engine id (to unload it)."""
    adapter = require_adapter(session=session, name=name, for_update=True)
    target = require_version(session=session, adapter=adapter, version=version)
    _leave_routing(adapter, target)
    assert target.id is not None
    version_id, uri = target.id, target.artifact_uri
    session.delete(target)
    record_event(session, adapter, "delete", version)
    _commit(session, adapter)
    store.delete(uri)  # after the commit: a failed transaction must not lose the weights
    return version_id


def set_pinned(*, session: Session, name: str, pinned: bool) -> Adapter:
    adapter = require_adapter(session=session, name=name, for_update=True)
    adapter.pinned = pinned
    record_event(session, adapter, "pin" if pinned else "unpin", None)
    return _commit(session, adapter)


def record_metrics(*, session: Session, name: str, version: int, key: str, value: Any) -> AdapterVersion:
    """Store ``value`` under ``metrics[key]`` of ``name@version`` (e.g. the gate's decision), and
    in the audit trail. Routing does not change, so the generation does not either."""
    adapter = require_adapter(session=session, name=name, for_update=True)
    target = require_version(session=session, adapter=adapter, version=version)
    target.metrics = {**target.metrics, key: value}
    session.add(target)
    summary = value.get("verdict") if isinstance(value, dict) and "verdict" in value else value
    record_event(session, adapter, key, version, summary=summary)
    session.commit()
    session.refresh(target)
    return target


def set_task_checks(*, session: Session, name: str, task_checks: dict[str, Any]) -> Adapter:
    """Replace the adapter's evaluation checks (validated by the caller, which knows the gate)."""
    adapter = require_adapter(session=session, name=name, for_update=True)
    adapter.task_checks = task_checks
    record_event(session, adapter, "task_checks", None)
    session.add(adapter)
    session.commit()
    session.refresh(adapter)
    return adapter

"""Registry operations as the admin API runs them.

The engine is the last judge of an adapter: validation mirrors what vLLM accepts, but only
loading it proves it. So every imported version is loaded into the engine before the import
answers, and one the engine refuses is *rejected* (the reason goes to its audit trail, the files
stay for inspection, its number is never reused) and the API answers 400 ``invalid_adapter``
naming the fault. A version is loaded and warmed before an alias moves to it, and unloaded
before its files are deleted.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters import lifecycle
from adapters.base_model import BaseModelSpec
from adapters.exceptions import AdapterConflict, InvalidAdapter
from adapters.importer import import_version
from adapters.models import (
    AdapterDetail,
    AdapterEventPublic,
    AdapterEventsPublic,
    AdaptersPublic,
    AdapterVersion,
    AdapterVersionPublic,
    VersionStatus,
)
from adapters.registry import (
    ServableVersion,
    describe,
    get_servable,
    list_adapters,
    list_events,
    require_adapter,
    require_version,
    version_by_id,
)
from adapters.sources import HUB_SCHEME, AdapterSource, ArchiveSource, LocalFolderSource, source_from_uri
from adapters.store import ArtifactStore
from adapters.validation import EngineLimits
from gateway.engine.protocol import AdapterLoadError
from gateway.exceptions import EngineUnavailable
from gateway.routing import ModelRouter
from switchyard.db import run_in_session

logger = logging.getLogger(__name__)


class RegistryService:
    def __init__(
        self,
        *,
        db: Engine,
        store: ArtifactStore,
        router: ModelRouter,
        base: BaseModelSpec,
        limits: EngineLimits,
        scratch_dir: Path,
        import_roots: Sequence[Path],
        engine_ready: Callable[[], bool],
    ) -> None:
        self._db = db
        self._store = store
        self._router = router
        self._base = base
        self._limits = limits
        self._scratch = scratch_dir
        self._import_roots = tuple(Path(root).resolve() for root in import_roots)
        self._engine_ready = engine_ready

    def _routable(self, session: Session, name: str, version: int) -> AdapterVersion:
        """The lifecycle's preconditions for routing traffic to ``name@version``, checked before
        the engine does any work (a rejected version is a conflict, not a missing model)."""
        row = require_version(session=session, adapter=require_adapter(session=session, name=name), version=version)
        if row.status == VersionStatus.rejected:
            raise AdapterConflict(f"{name}@{version} was rejected and cannot be routed", param="version")
        return row

    async def _warm(self, name: str, version: int) -> None:
        """Load and warm ``name@version`` before any alias points at it."""
        await run_in_session(self._db, lambda s: self._routable(s, name, version))
        if not self._engine_ready():
            # No alias moves to a version this engine has not loaded and warmed (the CLI, which
            # has no engine, leaves that to each gateway's refresh, which warms before it swaps).
            raise EngineUnavailable(
                f"The engine is not ready, so {name}@{version} cannot be warmed; the alias was not moved. "
                "Retry once /ready answers 200."
            )
        servable = await run_in_session(
            self._db,
            lambda s: get_servable(
                session=s, store=self._store, name=name, version=version, base_fingerprint=self._base.fingerprint
            ),
        )
        try:
            await self._router.preload(servable)
        except AdapterLoadError as exc:
            raise InvalidAdapter(
                f"The engine could not load {name}@{version}: {exc.reason}; the alias was not moved.", param="version"
            ) from None
        except EngineUnavailable:
            raise
        except Exception as exc:
            logger.exception("could not load %s@%d", name, version)
            raise EngineUnavailable(f"The engine could not load {name}@{version}; the alias was not moved.") from exc

    async def _check_loads(self, row: AdapterVersionPublic, name: str) -> None:
        """Load a new version once, so a fault the engine finds rejects it now instead of killing
        the engine on its first request. With no engine running the check waits for first use
        (routing loads every version before admitting a request to it)."""
        if not self._engine_ready():
            return
        servable = await run_in_session(
            self._db,
            lambda s: get_servable(
                session=s, store=self._store, name=name, version=row.version, base_fingerprint=self._base.fingerprint
            ),
        )
        try:
            await self._router.preload(servable, warm=False)
        except AdapterLoadError as exc:
            reason = f"the engine could not load it: {exc.reason}"
            await run_in_session(
                self._db, lambda s: lifecycle.reject(session=s, name=name, version=row.version, reason=reason)
            )
            await self._router.refresh()
            raise InvalidAdapter(f"{name}@{row.version} was rejected: {reason}", param="source") from None
        except EngineUnavailable:
            logger.warning("the engine went away while checking %s@%d; it is checked on first use", name, row.version)

    async def _detail(self, name: str) -> AdapterDetail:
        return await run_in_session(
            self._db,
            lambda s: describe(session=s, adapter=require_adapter(session=s, name=name)),  # type: ignore[return-value]
        )

    async def list(self) -> AdaptersPublic:
        def work(session: Session) -> AdaptersPublic:
            rows, count = list_adapters(session=session)
            return AdaptersPublic(
                data=[describe(session=session, adapter=a, with_versions=False) for a in rows], count=count
            )

        return await run_in_session(self._db, work)

    async def show(self, name: str) -> AdapterDetail:
        return await self._detail(name)

    def _import(
        self, session: Session, name: str, source: AdapterSource, scratch: Path, **metadata: Any
    ) -> AdapterVersionPublic:
        version = import_version(
            session=session,
            store=self._store,
            name=name,
            source=source,
            base=self._base,
            limits=self._limits,
            scratch_dir=scratch,
            reserved_names=frozenset({self._router.base_model_name}),
            **metadata,
        )
        return AdapterVersionPublic.model_validate(version)

    def _source(self, uri: str) -> AdapterSource:
        """A hub id, or a server path inside a configured import root (never anywhere else: the
        admin API must not read arbitrary files of the gateway's machine)."""
        if uri.startswith(HUB_SCHEME):
            return source_from_uri(uri, max_bytes=self._limits.max_adapter_bytes)
        if "\x00" in uri:
            raise InvalidAdapter("source must not contain NUL characters", param="source")
        path = Path(uri).resolve()
        if not any(path.is_relative_to(root) for root in self._import_roots):
            raise InvalidAdapter(
                "source is not inside an import root (SWITCHYARD_REGISTRY__IMPORT_ROOTS); "
                "upload an archive or use hf:// instead",
                param="source",
            )
        return source_from_uri(str(path), max_bytes=self._limits.max_adapter_bytes)

    async def import_from(self, name: str, uri: str, **metadata: Any) -> AdapterVersionPublic:
        """Register ``uri`` (an import-root path or ``hf://``) as a new candidate version."""
        source = await asyncio.to_thread(self._source, uri)
        row = await run_in_session(self._db, lambda s: self._import(s, name, source, self._scratch, **metadata))
        await self._check_loads(row, name)
        return row

    async def import_upload(self, name: str, filename: str, upload: BinaryIO, **metadata: Any) -> AdapterVersionPublic:
        """Register an uploaded ``.tar.gz``/``.zip``; the archive never leaves the scratch folder."""

        def work(session: Session) -> AdapterVersionPublic:
            self._scratch.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self._scratch) as tmp:
                archive = Path(tmp) / "upload"
                with archive.open("wb") as out:
                    copied = 0
                    while block := upload.read(1 << 20):
                        copied += len(block)
                        if copied > self._limits.max_adapter_bytes:
                            raise InvalidAdapter(
                                f"upload is over the limit of {self._limits.max_adapter_bytes} bytes", param="file"
                            )
                        out.write(block)
                # The name is recorded as the version's source: keep it storable whatever was sent.
                label = Path(filename.replace("\x00", "")).name[:255] or "upload"
                source = ArchiveSource(archive, max_bytes=self._limits.max_adapter_bytes, label=label)
                return self._import(session, name, source, Path(tmp), **metadata)

        row = await run_in_session(self._db, work)
        await self._check_loads(row, name)
        return row

    async def register_trained(self, name: str, folder: Path, **metadata: Any) -> AdapterVersionPublic:
        """Register a version the tuner trained. The folder is the tuner's own output, not a
        client's path, so no import root applies; everything else is an import like any other
        (validation, the store, and the engine's load check, which rejects what it refuses)."""
        source = LocalFolderSource(folder, max_bytes=self._limits.max_adapter_bytes)
        row = await run_in_session(self._db, lambda s: self._import(s, name, source, self._scratch, **metadata))
        await self._check_loads(row, name)
        return row

    async def servable(self, name: str, version: int) -> ServableVersion:
        """``name@version`` as the engine loads it (any status but rejected)."""
        return await run_in_session(
            self._db,
            lambda s: get_servable(
                session=s, store=self._store, name=name, version=version, base_fingerprint=self._base.fingerprint
            ),
        )

    async def record_metrics(self, name: str, version: int, key: str, value: Any) -> AdapterVersionPublic:
        return await run_in_session(
            self._db,
            lambda s: AdapterVersionPublic.model_validate(
                lifecycle.record_metrics(session=s, name=name, version=version, key=key, value=value)
            ),
        )

    async def set_task_checks(self, name: str, task_checks: dict[str, Any]) -> AdapterDetail:
        await run_in_session(
            self._db, lambda s: lifecycle.set_task_checks(session=s, name=name, task_checks=task_checks)
        )
        return await self._detail(name)

    async def promote(self, name: str, version: int) -> AdapterDetail:
        await self._warm(name, version)
        await run_in_session(self._db, lambda s: lifecycle.promote(session=s, name=name, version=version))
        await self._router.refresh()
        return await self._detail(name)

    async def rollback(self, name: str) -> AdapterDetail:
        def previous(session: Session) -> int:
            adapter = require_adapter(session=session, name=name)
            row = version_by_id(session=session, version_id=adapter.previous_version_id)
            if row is None:
                raise AdapterConflict(f"adapter {name!r} has no previous version to roll back to", param="name")
            if row.status == VersionStatus.rejected:
                raise AdapterConflict(f"{name}@{row.version} was rejected; promote another version", param="name")
            return row.version

        await self._warm(name, await run_in_session(self._db, previous))
        await run_in_session(self._db, lambda s: lifecycle.rollback(session=s, name=name))
        await self._router.refresh()
        return await self._detail(name)

    async def canary(self, name: str, version: int, weight: float) -> AdapterDetail:
        if weight > 0:
            await self._warm(name, version)
        await run_in_session(
            self._db, lambda s: lifecycle.set_canary(session=s, name=name, version=version, weight=weight)
        )
        await self._router.refresh()
        return await self._detail(name)

    async def pin(self, name: str, pinned: bool) -> AdapterDetail:
        await run_in_session(self._db, lambda s: lifecycle.set_pinned(session=s, name=name, pinned=pinned))
        await self._router.refresh()
        return await self._detail(name)

    async def retire(self, name: str, version: int) -> AdapterVersionPublic:
        row = await run_in_session(
            self._db,
            lambda s: AdapterVersionPublic.model_validate(lifecycle.retire(session=s, name=name, version=version)),
        )
        await self._router.refresh()
        return row

    async def reject(self, name: str, version: int, reason: str) -> AdapterVersionPublic:
        row = await run_in_session(
            self._db,
            lambda s: AdapterVersionPublic.model_validate(
                lifecycle.reject(session=s, name=name, version=version, reason=reason)
            ),
        )
        await self._router.refresh()
        return row

    async def events(self, name: str, *, offset: int = 0, limit: int = 100) -> AdapterEventsPublic:
        def work(session: Session) -> AdapterEventsPublic:
            rows, count = list_events(
                session=session, adapter=require_adapter(session=session, name=name), offset=offset, limit=limit
            )
            return AdapterEventsPublic(data=[AdapterEventPublic.model_validate(e) for e in rows], count=count)

        return await run_in_session(self._db, work)

    async def delete(self, name: str, version: int) -> None:
        """Delete ``name@version`` (not the active one). Its files go only after this engine has
        unloaded it: new requests for it are refused at once, the ones running finish first."""

        def deletable(session: Session) -> int:
            adapter = require_adapter(session=session, name=name)
            row = require_version(session=session, adapter=adapter, version=version)
            if row.id == adapter.active_version_id:  # checked again, under lock, by the lifecycle
                raise AdapterConflict(f"{name}@{version} is active; promote another version first", param="version")
            assert row.id is not None
            return row.id

        version_id = await run_in_session(self._db, deletable)
        try:
            await self._router.withdraw(version_id)
            await run_in_session(
                self._db, lambda s: lifecycle.delete_version(session=s, store=self._store, name=name, version=version)
            )
        except BaseException:
            self._router.restore(version_id)
            raise
        self._router.forget(version_id)
        await self._router.refresh()

"""Registry operations as the admin API runs them: the engine is warmed before an alias moves."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters import lifecycle
from adapters.base_model import BaseModelSpec
from adapters.errors import AdapterConflict, InvalidAdapter
from adapters.importer import import_version
from adapters.models import AdapterDetail, AdaptersPublic, AdapterVersionPublic
from adapters.registry import describe, get_servable, list_adapters, require_adapter, version_by_id
from adapters.sources import HUB_SCHEME, AdapterSource, ArchiveSource, source_from_uri
from adapters.store import ArtifactStore
from adapters.validation import EngineLimits
from gateway.exceptions import EngineUnavailable
from gateway.routing import ModelRouter
from switchyard.db import session_scope

logger = logging.getLogger(__name__)
T = TypeVar("T")


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

    async def _in_session(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with session_scope(self._db) as session:
                return work(session)

        return await asyncio.to_thread(run)

    async def _warm(self, name: str, version: int) -> None:
        """Load ``name@version`` into the engine before any alias points at it."""
        if not self._engine_ready():
            return  # the engine loads it on first use once it is up
        servable = await self._in_session(
            lambda s: get_servable(
                session=s, store=self._store, name=name, version=version, base_fingerprint=self._base.fingerprint
            )
        )
        try:
            await self._router.preload(servable)
        except Exception as exc:
            logger.exception("could not load %s@%d", name, version)
            raise EngineUnavailable(f"The engine could not load {name}@{version}; the alias was not moved.") from exc

    async def _detail(self, name: str) -> AdapterDetail:
        return await self._in_session(
            lambda s: describe(session=s, adapter=require_adapter(session=s, name=name))  # type: ignore[return-value]
        )

    async def list(self) -> AdaptersPublic:
        def work(session: Session) -> AdaptersPublic:
            rows, count = list_adapters(session=session)
            return AdaptersPublic(
                data=[describe(session=session, adapter=a, with_versions=False) for a in rows], count=count
            )

        return await self._in_session(work)

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
        return await self._in_session(lambda s: self._import(s, name, source, self._scratch, **metadata))

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
                source = ArchiveSource(archive, max_bytes=self._limits.max_adapter_bytes, label=Path(filename).name)
                return self._import(session, name, source, Path(tmp), **metadata)

        return await self._in_session(work)

    async def promote(self, name: str, version: int) -> AdapterDetail:
        await self._warm(name, version)
        await self._in_session(lambda s: lifecycle.promote(session=s, name=name, version=version))
        await self._router.refresh()
        return await self._detail(name)

    async def rollback(self, name: str) -> AdapterDetail:
        def previous(session: Session) -> int:
            adapter = require_adapter(session=session, name=name)
            row = version_by_id(session=session, version_id=adapter.previous_version_id)
            if row is None:
                raise AdapterConflict(f"adapter {name!r} has no previous version to roll back to", param="name")
            return row.version

        await self._warm(name, await self._in_session(previous))
        await self._in_session(lambda s: lifecycle.rollback(session=s, name=name))
        await self._router.refresh()
        return await self._detail(name)

    async def canary(self, name: str, version: int, weight: float) -> AdapterDetail:
        if weight > 0:
            await self._warm(name, version)
        await self._in_session(lambda s: lifecycle.set_canary(session=s, name=name, version=version, weight=weight))
        await self._router.refresh()
        return await self._detail(name)

    async def pin(self, name: str, pinned: bool) -> AdapterDetail:
        await self._in_session(lambda s: lifecycle.set_pinned(session=s, name=name, pinned=pinned))
        await self._router.refresh()
        return await self._detail(name)

    async def retire(self, name: str, version: int) -> AdapterVersionPublic:
        row = await self._in_session(
            lambda s: AdapterVersionPublic.model_validate(lifecycle.retire(session=s, name=name, version=version))
        )
        await self._router.refresh()
        return row

    async def delete(self, name: str, version: int) -> None:
        version_id = await self._in_session(
            lambda s: lifecycle.delete_version(session=s, store=self._store, name=name, version=version)
        )
        await self._router.refresh()
        await self._router.unload_when_idle(version_id)

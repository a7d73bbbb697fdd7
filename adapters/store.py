"""The artifact store: one immutable folder per adapter version.

Two implementations behind one interface: a local folder (the embedded default), and any
fsspec URL (``s3://``, ``gs://``, ``memory://`` …) with a local cache, since the engine loads
adapters from a local path.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from adapters.validation import CONFIG_FILE, WEIGHTS_FILE

ARTIFACT_FILES = (CONFIG_FILE, WEIGHTS_FILE)


class ArtifactStore(ABC):
    @abstractmethod
    def put(self, source: Path, *, name: str, version: int) -> str:
        """Copy a validated folder's contract files into the store; return the version's URI."""

    @abstractmethod
    def local_path(self, uri: str) -> Path:
        """A local folder the engine can load ``uri`` from."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Remove a version's folder."""


def _stage(target: Path, source: Path) -> None:
    """Copy the contract files into ``target`` through a temporary sibling, then rename."""
    if target.exists():
        raise FileExistsError(f"{target} already exists; versions are immutable")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for filename in ARTIFACT_FILES:
            shutil.copy2(Path(source) / filename, staging / filename)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def put(self, source: Path, *, name: str, version: int) -> str:
        target = self.root / name / f"v{version}"
        _stage(target, source)
        return target.as_uri()

    def local_path(self, uri: str) -> Path:
        path = Path(uri.removeprefix("file://"))
        if not path.resolve().is_relative_to(self.root):
            raise ValueError("artifact is outside the store")
        return path

    def delete(self, uri: str) -> None:
        shutil.rmtree(self.local_path(uri), ignore_errors=True)


class FsspecArtifactStore(ArtifactStore):
    """Any fsspec URL as the store; versions are cached locally on first use."""

    def __init__(self, url: str, cache_dir: Path) -> None:
        import fsspec

        self.url = url.rstrip("/")
        self.fs, self._root = fsspec.core.url_to_fs(self.url)
        self.cache_dir = Path(cache_dir)

    def put(self, source: Path, *, name: str, version: int) -> str:
        uri = f"{self.url}/{name}/v{version}"
        remote = self._remote(uri)
        if self.fs.exists(remote):
            raise FileExistsError(f"{uri} already exists; versions are immutable")
        # The config goes last: a folder with a config is a complete folder.
        for filename in (WEIGHTS_FILE, CONFIG_FILE):
            self.fs.put_file(str(Path(source) / filename), f"{remote}/{filename}")
        return uri

    def local_path(self, uri: str) -> Path:
        if not uri.startswith(self.url + "/"):
            raise ValueError("artifact is outside the store")
        target = self._cached(uri)
        if (target / CONFIG_FILE).is_file():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=self.cache_dir))
        try:
            for filename in ARTIFACT_FILES:
                self.fs.get_file(f"{self._remote(uri)}/{filename}", str(staging / filename))
            staging.rename(target)
        except OSError:
            # Losing the race to another process that cached the same version is fine.
            if not (target / CONFIG_FILE).is_file():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _remote(self, uri: str) -> str:
        return self._root + uri.removeprefix(self.url)

    def _cached(self, uri: str) -> Path:
        return self.cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:32]

    def delete(self, uri: str) -> None:
        if self.fs.exists(self._remote(uri)):
            self.fs.rm(self._remote(uri), recursive=True)
        shutil.rmtree(self._cached(uri), ignore_errors=True)


def make_store(location: str | None, data_dir: Path) -> ArtifactStore:
    """``None`` or a path: a local folder (default ``<data_dir>/adapters``); a URL: fsspec."""
    if location and "://" in location and not location.startswith("file://"):
        return FsspecArtifactStore(location, data_dir / "cache" / "adapters")
    root = Path(location.removeprefix("file://")) if location else data_dir / "adapters"
    return LocalArtifactStore(root)

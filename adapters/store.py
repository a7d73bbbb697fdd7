"""The artifact store: one immutable folder per adapter version, verified by its sha256.

Two implementations behind one interface: a local folder (the embedded default), and any
fsspec URL (``s3://``, ``gs://``, ``memory://`` …) with a local cache, since the engine loads
adapters from a local path.

Every ``put`` writes to a location no other attempt can use (the version number, the digest
and a random suffix): the registry commits after the copy, so an attempt that died between the
two must neither block the next import nor be overwritten by it. Readers pass the digest the
registry recorded; a copy that no longer matches is refused with :class:`ArtifactCorrupt`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from adapters.exceptions import ArtifactCorrupt
from adapters.validation import CONFIG_FILE, CONTRACT_FILES, WEIGHTS_FILE, ArtifactDigest, sha256_of

# The config goes last: a folder with a config is a complete folder.
UPLOAD_ORDER = (WEIGHTS_FILE, CONFIG_FILE)
SETTLE_NS = 2_000_000_000


class ArtifactStore(ABC):
    @abstractmethod
    def put(self, source: Path, *, name: str, sha256: str) -> str:
        """Copy a validated folder's contract files to a new location and return its URI.

        ``sha256`` is the artifact digest validation computed; a copy that does not match it
        (the folder changed in between) raises :class:`ArtifactCorrupt` and leaves nothing.
        """

    @abstractmethod
    def local_path(self, uri: str, *, sha256: str | None = None) -> Path:
        """A local folder the engine can load ``uri`` from; checked against ``sha256`` if given."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Remove a version's folder (nothing happens if it is already gone)."""


def _folder_name(sha256: str) -> str:
    # No version number in it: the copy is made before the number is taken (outside the
    # registry's transaction), and a random part keeps two imports of one folder apart.
    return f"{sha256[:16]}-{secrets.token_hex(4)}"


def _copy_hashing(source: Path, out: BinaryIO) -> str:
    """Copy ``source`` into ``out`` and return the sha256 of exactly the bytes written."""
    digest = hashlib.sha256()
    with source.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _check(found: dict[str, str], sha256: str, what: str) -> None:
    actual = ArtifactDigest(config_sha256=found[CONFIG_FILE], weights_sha256=found[WEIGHTS_FILE]).sha256
    if actual != sha256:
        raise ArtifactCorrupt(f"{what} does not match its recorded sha256 {sha256[:16]}…")


def _file_digests(folder: Path) -> dict[str, str]:
    return {filename: sha256_of(folder / filename) for filename in CONTRACT_FILES}


def _signature(folder: Path) -> tuple:
    # ctime moves on every write, rename or chmod, and no tool sets it back: a folder with the
    # same signature holds the same bytes as when it was last hashed.
    stats = [os.stat(folder / filename) for filename in CONTRACT_FILES]
    return tuple((s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for s in stats)


def _settled(signature: tuple, hashed_at_ns: int) -> bool:
    """Whether the files last changed well before they were hashed. File times tick coarsely, so
    a write just after the hash can keep them; such a folder is hashed again next time (as git
    does with "racily clean" files)."""
    return max(max(entry[2], entry[3]) for entry in signature) < hashed_at_ns - SETTLE_NS


_verified: dict[tuple[str, str], tuple] = {}


def verify_folder(folder: Path, sha256: str) -> None:
    """Raise :class:`ArtifactCorrupt` unless ``folder``'s contract files match ``sha256``.

    Routing asks for every routed version at each registry refresh, so a folder is hashed once
    and then only re-hashed when its files' metadata changes.
    """
    key = (str(folder), sha256)
    try:
        signature = _signature(folder)
        if _verified.get(key) == signature:
            return
        hashed_at = time.time_ns()
        _check(_file_digests(folder), sha256, "the stored adapter")
    except OSError:
        raise ArtifactCorrupt("the stored adapter is missing or unreadable") from None
    if _settled(signature, hashed_at):
        _verified[key] = signature


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def put(self, source: Path, *, name: str, sha256: str) -> str:
        target = self.root / name / _folder_name(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Built under a hidden sibling and renamed: the version's folder appears whole or not at all.
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            found = {}
            for filename in CONTRACT_FILES:
                with (staging / filename).open("wb") as out:
                    found[filename] = _copy_hashing(Path(source) / filename, out)
            _check(found, sha256, "the copied adapter")
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target.as_uri()

    def _path(self, uri: str) -> Path:
        path = Path(unquote(urlparse(uri).path))
        if urlparse(uri).scheme != "file" or not path.resolve().is_relative_to(self.root):
            raise ValueError("artifact is outside the store")
        return path

    def local_path(self, uri: str, *, sha256: str | None = None) -> Path:
        path = self._path(uri)
        if sha256 is not None:
            verify_folder(path, sha256)
        return path

    def delete(self, uri: str) -> None:
        shutil.rmtree(self._path(uri), ignore_errors=True)


class FsspecArtifactStore(ArtifactStore):
    """Any fsspec URL as the store; versions are cached locally on first use."""

    def __init__(self, url: str, cache_dir: Path) -> None:
        import fsspec

        self.url = url.rstrip("/")
        self.fs, self._root = fsspec.core.url_to_fs(self.url)
        self.cache_dir = Path(cache_dir)

    def put(self, source: Path, *, name: str, sha256: str) -> str:
        uri = f"{self.url}/{name}/{_folder_name(sha256)}"
        remote = self._remote(uri)
        try:
            found = {}
            for filename in UPLOAD_ORDER:
                with self.fs.open(f"{remote}/{filename}", "wb") as out:
                    found[filename] = _copy_hashing(Path(source) / filename, out)
            _check(found, sha256, "the uploaded adapter")
        except BaseException:
            with contextlib.suppress(Exception):  # the upload's own error is the one to report
                self._remove_remote(remote)  # a partial upload must not be left behind
            raise
        return uri

    def local_path(self, uri: str, *, sha256: str | None = None) -> Path:
        if not uri.startswith(self.url + "/"):
            raise ValueError("artifact is outside the store")
        target = self._cached(uri)
        if (target / CONFIG_FILE).is_file():
            if sha256 is None:
                return target
            try:
                verify_folder(target, sha256)
                return target
            except ArtifactCorrupt:
                self._evict(target)  # the cache went bad, not necessarily the store: fetch again
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=self.cache_dir))
        try:
            for filename in CONTRACT_FILES:
                self.fs.get_file(f"{self._remote(uri)}/{filename}", str(staging / filename))
            if sha256 is not None:
                _check(_file_digests(staging), sha256, "the stored adapter")
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

    def _remove_remote(self, remote: str) -> None:
        if self.fs.exists(remote):
            self.fs.rm(remote, recursive=True)

    def _cached(self, uri: str) -> Path:
        return self.cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:32]

    def _evict(self, target: Path) -> None:
        # Renamed first, so that no reader ever sees a half-deleted folder under the cached name.
        trash = Path(tempfile.mkdtemp(prefix=".evict-", dir=self.cache_dir))
        with contextlib.suppress(OSError):
            target.rename(trash / "folder")
        shutil.rmtree(trash, ignore_errors=True)

    def delete(self, uri: str) -> None:
        self._remove_remote(self._remote(uri))
        shutil.rmtree(self._cached(uri), ignore_errors=True)


def make_store(location: str | None, data_dir: Path) -> ArtifactStore:
    """``None`` or a path: a local folder (default ``<data_dir>/adapters``); a URL: fsspec."""
    if location and "://" in location and not location.startswith("file://"):
        return FsspecArtifactStore(location, data_dir / "cache" / "adapters")
    root = Path(location.removeprefix("file://")) if location else data_dir / "adapters"
    return LocalArtifactStore(root)

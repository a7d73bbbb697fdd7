"""The artifact store: one immutable folder per adapter version.

A small interface so that a shared volume or an fsspec URL can stand where the local
folder stands today (the registry issue adds those implementations).
"""

from __future__ import annotations

import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from adapters.validation import CONFIG_FILE, WEIGHTS_FILE

ARTIFACT_FILES = (CONFIG_FILE, WEIGHTS_FILE)


class ArtifactStore(ABC):
    @abstractmethod
    def put(self, source: Path, *, name: str, version: int) -> str:
        """Copy a validated folder into the store; return its URI."""

    @abstractmethod
    def local_path(self, uri: str) -> Path:
        """A local folder the engine can load ``uri`` from."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Remove a version's folder (used to undo a registration that failed)."""


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def put(self, source: Path, *, name: str, version: int) -> str:
        target = self.root / name / f"v{version}"
        if target.exists():
            raise FileExistsError(f"artifact {name} v{version} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-v{version}-", dir=target.parent))
        try:
            # Only the contract's files travel: nothing else the source folder holds.
            for filename in ARTIFACT_FILES:
                shutil.copy2(Path(source) / filename, staging / filename)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        return target.as_uri()

    def local_path(self, uri: str) -> Path:
        path = Path(uri.removeprefix("file://"))
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"{uri} is outside the artifact store")
        return path

    def delete(self, uri: str) -> None:
        shutil.rmtree(self.local_path(uri), ignore_errors=True)

"""Where adapter folders come from: a local folder, an uploaded archive, or a hub repository.

Every source yields a local folder that validation then checks; archives are unpacked with
guards against path traversal (zip-slip), links and decompression bombs.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath

from adapters.errors import InvalidAdapter
from adapters.validation import CONFIG_FILE, WEIGHTS_FILE

HUB_SCHEME = "hf://"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


class AdapterSource(ABC):
    label: str

    @abstractmethod
    def fetch(self, workdir: Path) -> Path:
        """Materialise the adapter under ``workdir`` (a fresh, private folder); return its folder."""


class LocalFolderSource(AdapterSource):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.label = str(self.path)

    def fetch(self, workdir: Path) -> Path:
        if not self.path.is_dir():
            raise InvalidAdapter(f"adapter folder {self.path.name!r} does not exist", param="source")
        return self.path


class HubSource(AdapterSource):
    """``hf://org/name`` or ``hf://org/name@revision``: the real download path (never used in tests)."""

    def __init__(self, uri: str) -> None:
        repo, _, revision = uri.removeprefix(HUB_SCHEME).partition("@")
        self.repo_id, self.revision = repo, revision or None
        self.label = uri

    def fetch(self, workdir: Path) -> Path:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError

        try:
            snapshot_download(
                self.repo_id, revision=self.revision, local_dir=workdir, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE]
            )
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise InvalidAdapter(f"could not download {self.label}: {exc}", param="source") from None
        return workdir


def _safe_member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if not name or path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise InvalidAdapter(f"archive member {name!r} would be written outside its folder", param="file")
    return path


class ArchiveSource(AdapterSource):
    """A ``.tar.gz``/``.tgz``/``.tar`` or ``.zip`` holding one adapter folder (at the top or one level down)."""

    def __init__(self, archive: Path, *, max_bytes: int, label: str | None = None) -> None:
        self.archive = Path(archive)
        self.max_bytes = max_bytes
        self.label = label or self.archive.name

    def fetch(self, workdir: Path) -> Path:
        name = self.label.lower()
        if name.endswith(".zip"):
            self._extract_zip(workdir)
        elif name.endswith((".tar.gz", ".tgz", ".tar")):
            self._extract_tar(workdir)
        else:
            raise InvalidAdapter(f"unsupported archive {self.label!r}: use .tar.gz, .tgz, .tar or .zip", param="file")
        return self._adapter_root(workdir)

    def _check_total(self, total: int) -> None:
        if total > self.max_bytes:
            raise InvalidAdapter(f"archive expands to more than {self.max_bytes} bytes", param="file")

    def _extract_zip(self, workdir: Path) -> None:
        try:
            with zipfile.ZipFile(self.archive) as archive:
                members = archive.infolist()
                total = 0
                for info in members:
                    _safe_member_path(info.filename)
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise InvalidAdapter(f"archive member {info.filename!r} is a symlink", param="file")
                    total += info.file_size
                self._check_total(total)
                for info in members:
                    target = workdir / _safe_member_path(info.filename)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as src, target.open("wb") as dst:
                        written = 0
                        while block := src.read(1 << 20):
                            written += len(block)
                            self._check_total(written)  # the header's size may lie
                            dst.write(block)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidAdapter(f"{self.label!r} is not a readable zip archive: {exc}", param="file") from None

    def _extract_tar(self, workdir: Path) -> None:
        try:
            with tarfile.open(self.archive, mode="r:*") as archive:
                members = archive.getmembers()
                for member in members:
                    _safe_member_path(member.name)
                    if not (member.isfile() or member.isdir()):
                        raise InvalidAdapter(f"archive member {member.name!r} is a link or special file", param="file")
                self._check_total(sum(m.size for m in members))
                archive.extractall(workdir, members=members, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise InvalidAdapter(f"{self.label!r} is not a readable tar archive: {exc}", param="file") from None

    @staticmethod
    def _adapter_root(workdir: Path) -> Path:
        if (workdir / CONFIG_FILE).is_file():
            return workdir
        children = [p for p in workdir.iterdir() if p.is_dir()]
        if len(children) == 1 and (children[0] / CONFIG_FILE).is_file():
            return children[0]
        raise InvalidAdapter(f"archive holds no {CONFIG_FILE} at its top level or one folder down", param="file")


def source_from_uri(uri: str) -> AdapterSource:
    """``hf://org/name[@rev]`` for the hub, otherwise a local folder or archive path."""
    if uri.startswith(HUB_SCHEME):
        return HubSource(uri)
    path = Path(uri)
    if path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES):
        from adapters.config import AdapterSettings

        return ArchiveSource(path, max_bytes=AdapterSettings().max_adapter_bytes)
    return LocalFolderSource(path)

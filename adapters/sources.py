"""Where adapter folders come from: a local folder, an uploaded archive, or a hub repository.

Every source yields a local folder that validation then checks; archives are unpacked with
guards against path traversal (zip-slip), links, colliding members and decompression bombs.
Whatever an archive holds, a bad one is an :class:`InvalidAdapter` whose message names the
member at fault but never a path of this machine.
"""

from __future__ import annotations

import errno
import gzip
import lzma
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from adapters.exceptions import InvalidAdapter
from adapters.validation import CONFIG_FILE, CONTRACT_FILES, WEIGHTS_FILE

HUB_SCHEME = "hf://"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
MAX_MEMBERS = 1000
"""An adapter is two files; an archive with more members than this is not one."""
# What a damaged or hostile archive raises while it is read or unpacked (zlib.error: a corrupt
# deflate stream; EOFError: a truncated gzip; the OSError subclasses: members that collide).
ARCHIVE_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    gzip.BadGzipFile,
    EOFError,
    struct.error,
    ValueError,
    RuntimeError,  # zipfile: an encrypted member
    NotImplementedError,  # zipfile: an unknown compression method
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
)
# OSErrors that the archive's content causes; any other (a full disk, a permission) is the server's.
CONTENT_ERRNOS = frozenset({None, errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL, errno.ENOTEMPTY})


class AdapterSource(ABC):
    label: str
    param: str = "source"
    """The request field an error in this source points at."""

    @abstractmethod
    def fetch(self, workdir: Path) -> Path:
        """Materialise the adapter under ``workdir`` (a fresh, private folder); return its folder."""


class LocalFolderSource(AdapterSource):
    """A folder on this machine. Its contract files are copied into the private workdir first,
    and everything after (validation, hashing, the store) reads that copy: a folder changed
    while it is imported cannot get one set of bytes validated and another stored."""

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.label = str(self.path)

    def fetch(self, workdir: Path) -> Path:
        try:
            folder = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            raise InvalidAdapter(f"adapter folder {self.path.name!r} does not exist", param=self.param) from None
        try:
            copied = 0
            for filename in CONTRACT_FILES:
                copied += self._copy(folder, filename, workdir / filename, self.max_bytes - copied)
        finally:
            os.close(folder)
        return workdir

    def _copy(self, folder: int, filename: str, target: Path, budget: int) -> int:
        try:
            source = os.open(filename, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
        except FileNotFoundError:
            return 0  # validation names the missing file
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidAdapter(f"{filename} is a symlink", param=self.param) from None
            raise InvalidAdapter(f"{filename} cannot be read", param=self.param) from None
        written = 0
        with os.fdopen(source, "rb") as src, target.open("wb") as dst:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                raise InvalidAdapter(f"{filename} is not a regular file", param=self.param)
            while block := src.read(1 << 20):
                written += len(block)
                if written > budget:
                    raise InvalidAdapter(f"adapter is over the limit of {self.max_bytes} bytes", param=self.param)
                dst.write(block)
        return written


class HubSource(AdapterSource):
    """``hf://org/name`` or ``hf://org/name@revision``: the real download path (never used in tests)."""

    def __init__(self, uri: str) -> None:
        repo, _, revision = uri.removeprefix(HUB_SCHEME).partition("@")
        self.repo_id, self.revision = repo, revision or None
        self.label = uri

    def fetch(self, workdir: Path) -> Path:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, HFValidationError

        try:
            snapshot_download(
                self.repo_id, revision=self.revision, local_dir=workdir, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE]
            )
        except HFValidationError as exc:  # a malformed repository id: its text is about the id
            raise InvalidAdapter(f"invalid hub id {self.label!r}: {exc}", param=self.param) from None
        except HfHubHTTPError as exc:
            status = getattr(exc.response, "status_code", None)
            raise InvalidAdapter(f"could not download {self.label} (HTTP {status})", param=self.param) from None
        except (OSError, ValueError):  # the text of an OSError names local paths
            raise InvalidAdapter(f"could not download {self.label} from the hub", param=self.param) from None
        return workdir


def _safe_member_path(name: str, param: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if not name or path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise InvalidAdapter(f"archive member {name[:200]!r} would be written outside its folder", param=param)
    return path


def _plan(members: Iterable[tuple[str, bool]], param: str) -> None:
    """Refuse members that would collide on disk: a name twice, or a name that is both a file
    and a folder (``notes`` then ``notes/inner``). Unpacking them would fail half-way with an
    error that carries the server's path, or let a later member replace a checked one."""
    kinds: dict[PurePosixPath, bool] = {}
    for count, (name, is_dir) in enumerate(members, start=1):
        if count > MAX_MEMBERS:
            raise InvalidAdapter(f"archive holds more than {MAX_MEMBERS} members", param=param)
        path = _safe_member_path(name, param)
        if not path.parts:
            if is_dir:
                continue  # "./": the archive's own top folder
            raise InvalidAdapter(f"archive member {name[:200]!r} has no file name", param=param)
        if path in kinds and not (is_dir and kinds[path]):
            raise InvalidAdapter(f"archive member {name[:200]!r} appears more than once", param=param)
        kinds[path] = is_dir
    for path in kinds:
        clash = next((p for p in path.parents if kinds.get(p) is False), None)
        if clash is not None:
            raise InvalidAdapter(f"archive member {str(clash)[:200]!r} is both a file and a folder", param=param)


class ArchiveSource(AdapterSource):
    """A ``.tar.gz``/``.tgz``/``.tar`` or ``.zip`` holding one adapter folder (at the top or one level down)."""

    def __init__(self, archive: Path, *, max_bytes: int, label: str | None = None, param: str = "file") -> None:
        self.archive = Path(archive)
        self.max_bytes = max_bytes
        self.label = label or self.archive.name
        self.param = param

    def fetch(self, workdir: Path) -> Path:
        name = self.label.lower()
        if name.endswith(".zip"):
            kind, extract = "zip", self._extract_zip
        elif name.endswith((".tar.gz", ".tgz", ".tar")):
            kind, extract = "tar", self._extract_tar
        else:
            raise InvalidAdapter(
                f"unsupported archive {self.label!r}: use .tar.gz, .tgz, .tar or .zip", param=self.param
            )
        try:
            extract(workdir)
        except InvalidAdapter:
            raise
        except ARCHIVE_ERRORS:
            raise InvalidAdapter(f"{self.label!r} is not a readable {kind} archive", param=self.param) from None
        except OSError as exc:
            if exc.errno not in CONTENT_ERRNOS:
                raise  # not the archive's fault (the scratch disk is full, say)
            raise InvalidAdapter(f"{self.label!r} is not a readable {kind} archive", param=self.param) from None
        return self._adapter_root(workdir)

    def _check_total(self, total: int) -> None:
        if total > self.max_bytes:
            raise InvalidAdapter(f"archive expands to more than {self.max_bytes} bytes", param=self.param)

    def _extract_zip(self, workdir: Path) -> None:
        with zipfile.ZipFile(self.archive) as archive:
            members = archive.infolist()
            _plan(((info.filename, info.is_dir()) for info in members), self.param)
            for info in members:
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise InvalidAdapter(f"archive member {info.filename[:200]!r} is a symlink", param=self.param)
            self._check_total(sum(info.file_size for info in members))
            written = 0
            for info in members:
                target = workdir / _safe_member_path(info.filename, self.param)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, target.open("wb") as dst:
                    while block := src.read(1 << 20):
                        written += len(block)
                        self._check_total(written)  # the header's size may lie
                        dst.write(block)

    def _extract_tar(self, workdir: Path) -> None:
        with tarfile.open(self.archive, mode="r:*") as archive:
            members = archive.getmembers()
            _plan(((m.name, m.isdir()) for m in members), self.param)
            for member in members:
                # Sparse members unpack to more than their stored size.
                if not (member.isfile() or member.isdir()) or member.issparse():
                    raise InvalidAdapter(
                        f"archive member {member.name[:200]!r} is a link or special file", param=self.param
                    )
            self._check_total(sum(m.size for m in members))
            archive.extractall(workdir, members=members, filter="data")

    def _adapter_root(self, workdir: Path) -> Path:
        if (workdir / CONFIG_FILE).is_file():
            return workdir
        children = [p for p in workdir.iterdir() if p.is_dir()]
        if len(children) == 1 and (children[0] / CONFIG_FILE).is_file():
            return children[0]
        raise InvalidAdapter(f"archive holds no {CONFIG_FILE} at its top level or one folder down", param=self.param)


def source_from_uri(uri: str, *, max_bytes: int) -> AdapterSource:
    """``hf://org/name[@rev]`` for the hub, otherwise a local folder or archive path.

    ``max_bytes`` caps what an archive may unpack to (the registry's ``max_adapter_bytes``)."""
    if uri.startswith(HUB_SCHEME):
        return HubSource(uri)
    path = Path(uri)
    if path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES):
        return ArchiveSource(path, max_bytes=max_bytes, param="source")
    return LocalFolderSource(path, max_bytes=max_bytes)

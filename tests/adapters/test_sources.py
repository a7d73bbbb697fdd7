"""Archive imports: good archives unpack, hostile ones are refused before anything is written outside."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from adapters.exceptions import InvalidAdapter
from adapters.sources import ArchiveSource, LocalFolderSource, source_from_uri
from adapters.validation import CONTRACT_FILES
from tests.utils.adapters import good_adapter

MAX = 10 * 1024 * 1024


def tar_of(folder: Path, path: Path, *, prefix: str = "adapter") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        archive.add(folder, arcname=prefix)
    return path


def zip_of(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for file in folder.iterdir():
            archive.write(file, arcname=file.name)
    return path


def test_tar_and_zip_unpack_to_the_adapter_folder(demo_model: Path, tmp_path: Path) -> None:
    folder = good_adapter(demo_model, tmp_path / "a")
    for archive in (tar_of(folder, tmp_path / "a.tar.gz"), zip_of(folder, tmp_path / "a.zip")):
        out = tmp_path / f"out-{archive.name}"
        out.mkdir()
        root = ArchiveSource(archive, max_bytes=MAX).fetch(out)
        assert (root / "adapter_config.json").is_file() and (root / "adapter_model.safetensors").is_file()
        assert root.is_relative_to(out)


def _zip_with(tmp_path: Path, name: str, data: bytes = b"x", *, symlink: bool = False) -> Path:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = 0o120777 << 16
        archive.writestr(info, data)
    return path


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.addfile(member, io.BytesIO(data) if data else None)
    return path


def _tar_symlink(tmp_path: Path) -> Path:
    member = tarfile.TarInfo("adapter_config.json")
    member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return _tar_with(tmp_path, member)


def _tar_traversal(tmp_path: Path) -> Path:
    member = tarfile.TarInfo("../../escaped.txt")
    member.size = 1
    return _tar_with(tmp_path, member, b"x")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: _zip_with(p, "../../escaped.txt"), "outside its folder"),
        (lambda p: _zip_with(p, "/etc/cron.d/evil"), "outside its folder"),
        (lambda p: _zip_with(p, "adapter_config.json", b"/etc/passwd", symlink=True), "symlink"),
        (lambda p: _zip_with(p, "big.bin", b"\0" * (MAX + 1)), "expands to more than"),
        (_tar_symlink, "link or special file"),
        (_tar_traversal, "outside its folder"),
        (lambda p: (p / "junk.zip").write_bytes(b"not a zip") and p / "junk.zip", "not a readable zip"),
        (lambda p: (p / "a.rar").write_bytes(b"x") and p / "a.rar", "unsupported archive"),
        (lambda p: _zip_with(p, "readme.txt"), "no adapter_config.json"),
    ],
    ids=["zip-slip", "absolute", "zip-symlink", "bomb", "tar-symlink", "tar-traversal", "corrupt", "rar", "empty"],
)
def test_hostile_archives_are_refused(tmp_path: Path, build, message: str) -> None:  # type: ignore[no-untyped-def]
    archive = build(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidAdapter) as info:
        ArchiveSource(archive, max_bytes=MAX).fetch(out)
    assert message in info.value.message
    assert not (tmp_path.parent / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


def test_source_from_uri(tmp_path: Path) -> None:
    assert isinstance(source_from_uri(str(tmp_path), max_bytes=MAX), LocalFolderSource)
    hub = source_from_uri("hf://org/name@abc123", max_bytes=MAX)
    assert (hub.repo_id, hub.revision) == ("org/name", "abc123")  # type: ignore[attr-defined]
    (tmp_path / "x.tar.gz").write_bytes(b"")
    archive = source_from_uri(str(tmp_path / "x.tar.gz"), max_bytes=1234)
    assert isinstance(archive, ArchiveSource) and archive.max_bytes == 1234 and archive.param == "source"
    with pytest.raises(InvalidAdapter, match="does not exist"):
        LocalFolderSource(tmp_path / "missing", max_bytes=MAX).fetch(tmp_path)


def test_a_local_folder_is_copied_before_anything_reads_it(tmp_path: Path, demo_model: Path) -> None:
    """Validation, hashing and the store all read the private copy, never the live folder."""
    folder = good_adapter(demo_model, tmp_path / "live")
    (folder / "notes.txt").write_text("not part of the contract")
    workdir = tmp_path / "work"
    workdir.mkdir()
    copy = LocalFolderSource(folder, max_bytes=MAX).fetch(workdir)
    assert copy == workdir and sorted(p.name for p in copy.iterdir()) == sorted(CONTRACT_FILES)
    (folder / "adapter_config.json").write_text("{}")  # changed after the fetch: the copy is not
    assert (copy / "adapter_config.json").read_text() != "{}"


def test_a_symlinked_contract_file_is_refused(tmp_path: Path, demo_model: Path) -> None:
    folder = good_adapter(demo_model, tmp_path / "live")
    (folder / "adapter_config.json").rename(tmp_path / "elsewhere.json")
    (folder / "adapter_config.json").symlink_to(tmp_path / "elsewhere.json")
    workdir = tmp_path / "work"
    workdir.mkdir()
    with pytest.raises(InvalidAdapter, match="symlink"):
        LocalFolderSource(folder, max_bytes=MAX).fetch(workdir)

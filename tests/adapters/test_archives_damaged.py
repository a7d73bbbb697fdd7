"""Damaged and colliding archives are refused as InvalidAdapter: never a server error, never a
server path in the message, always the request field at fault."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base_model import BaseModelSpec
from adapters.exceptions import InvalidAdapter
from adapters.importer import import_version
from adapters.models import AdapterVersion
from adapters.sources import ArchiveSource, source_from_uri
from adapters.store import LocalArtifactStore
from adapters.validation import EngineLimits
from tests.utils.adapters import edit_config, good_adapter

MAX = 10 * 1024 * 1024
LIMITS = EngineLimits(max_lora_rank=16, max_adapter_bytes=MAX)


def _tar(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    """``None`` as data makes a directory member."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            if data is None:
                archive.mkdir(name)
            else:
                archive.writestr(name, data)
    return path


def _patched_zip(tmp: Path, *, local: int, central: int, value: int) -> Path:
    """A one-member zip with a 16-bit header field (general flags, compression method) rewritten
    in both the local and the central header, as a zip written by another tool would have it."""
    path = _zip(tmp / "p.zip", [("adapter_config.json", b"{}")])
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", local), (b"PK\x01\x02", central)):
        at = data.index(signature) + offset
        data[at : at + 2] = value.to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


def _noise(size: int = 200_000) -> bytes:
    # Bytes that deflate cannot shrink much, so the stream is long enough to damage.
    return bytes((i * 7919 + (i >> 3) * 104729) % 251 for i in range(size))


def _truncated_tar(tmp: Path) -> Path:
    path = _tar(tmp / "t.tar.gz", [("adapter_model.safetensors", _noise())])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _corrupt_deflate_zip(tmp: Path) -> Path:
    path = _zip(tmp / "z.zip", [("adapter_model.safetensors", _noise())])
    data = bytearray(path.read_bytes())
    start = 30 + len("adapter_model.safetensors")  # past the local header: inside the deflate stream
    for i in range(start + 100, start + 400):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def _bad_crc_zip(tmp: Path) -> Path:
    path = tmp / "crc.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("adapter_config.json", b"A" * 1000)
    data = path.read_bytes()
    at = data.index(b"A" * 1000)
    path.write_bytes(data[:at] + b"B" + data[at + 1 :])  # same size, other bytes: only the CRC tells
    return path


ARCHIVES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("truncated tar.gz", _truncated_tar, "not a readable tar archive"),
    ("gzip garbage", lambda p: (p / "g.tar.gz").write_bytes(b"\x1f\x8b\x08" + b"\0" * 50) and p / "g.tar.gz", "tar"),
    ("corrupt deflate", _corrupt_deflate_zip, "not a readable zip archive"),
    ("bad CRC", _bad_crc_zip, "not a readable zip archive"),
    ("encrypted zip", lambda p: _patched_zip(p, local=6, central=8, value=0x1), "not a readable zip archive"),
    ("unknown method", lambda p: _patched_zip(p, local=8, central=10, value=99), "not a readable zip archive"),
    ("tar file then dir", lambda p: _tar(p / "c.tar.gz", [("notes", b"x"), ("notes/inner", b"y")]), "both a file"),
    ("tar dir then file", lambda p: _tar(p / "d.tar.gz", [("notes", None), ("notes", b"x")]), "more than once"),
    ("tar twice", lambda p: _tar(p / "w.tar.gz", [("adapter_config.json", b"{}")] * 2), "more than once"),
    ("zip file then dir", lambda p: _zip(p / "c.zip", [("notes", b"x"), ("notes/inner", b"y")]), "both a file"),
    ("zip dir then file", lambda p: _zip(p / "d.zip", [("notes/", None), ("notes", b"x")]), "more than once"),
    ("zip nameless", lambda p: _zip(p / "n.zip", [(".", b"x")]), "no file name"),
    ("too many members", lambda p: _tar(p / "many.tar.gz", [(f"f{i}", b"") for i in range(1001)]), "more than 1000"),
]


@pytest.mark.parametrize(("case", "build", "message"), ARCHIVES, ids=[a[0] for a in ARCHIVES])
def test_damaged_archives_are_invalid_without_paths(tmp_path: Path, case: str, build: Callable, message: str) -> None:
    archive = build(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidAdapter) as info:
        ArchiveSource(archive, max_bytes=MAX).fetch(out)
    assert message in info.value.message
    assert info.value.param == "file"
    assert str(tmp_path) not in info.value.message and "/tmp" not in info.value.message


def test_archive_named_by_path_points_at_source(tmp_path: Path) -> None:
    archive = _truncated_tar(tmp_path)
    with pytest.raises(InvalidAdapter) as info:
        source_from_uri(str(archive), max_bytes=MAX).fetch(tmp_path)
    assert info.value.param == "source" and str(tmp_path) not in info.value.message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target_modules": "(q_proj"}, "not a valid regular expression"),
        ({"target_modules": [["q_proj"]]}, "every entry of target_modules"),
        ({"r": -1}, "r must be a positive integer"),
        ({"r": 2**70}, "exceeds the engine's max_lora_rank"),
        ({"lora_alpha": False}, "lora_alpha must be a positive number"),
    ],
    ids=["regex", "nested-targets", "negative-r", "huge-r", "bool-alpha"],
)
def test_uploaded_bad_config_is_invalid_and_registers_nothing(
    db: Engine, demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path, changes: dict, message: str
) -> None:
    folder = edit_config(good_adapter(demo_model, tmp_path / "a"), **changes)
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="adapter")
    store = LocalArtifactStore(tmp_path / "store")
    with Session(db) as session:
        with pytest.raises(InvalidAdapter) as info:
            import_version(
                session=session,
                store=store,
                name="bot",
                source=ArchiveSource(archive, max_bytes=MAX, label="a.tar.gz"),
                base=base_spec,
                limits=LIMITS,
                scratch_dir=tmp_path / "scratch",
            )
        assert message in info.value.message and info.value.param == "file"
        assert str(tmp_path) not in info.value.message
        assert session.exec(select(AdapterVersion)).all() == []
    assert not any((tmp_path / "scratch").iterdir())

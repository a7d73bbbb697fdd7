"""Both artifact stores: immutable versions under unique locations, verified by sha256 on every
fetch, no partial copy ever left behind, local paths the engine can load, deletion."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from adapters import store as store_module
from adapters.exceptions import ArtifactCorrupt
from adapters.store import SETTLE_NS, ArtifactStore, FsspecArtifactStore, LocalArtifactStore, make_store
from adapters.validation import artifact_digest
from tests.utils.adapters import good_adapter


def _memory_store(tmp_path: Path) -> FsspecArtifactStore:
    store = make_store(f"memory://switchyard-{uuid.uuid4().hex}", tmp_path)
    assert isinstance(store, FsspecArtifactStore)
    return store


def _files(store: ArtifactStore, tmp_path: Path) -> list[str]:
    if isinstance(store, FsspecArtifactStore):
        return [p for p in store.fs.find(store._root) if not p.endswith("/")]
    return [str(p) for p in (tmp_path / "store").rglob("*") if p.is_file()]


@pytest.fixture(params=["local", "fsspec"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    return LocalArtifactStore(tmp_path / "store") if request.param == "local" else _memory_store(tmp_path)


def test_local_store(demo_model: Path, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    (source / "notes.txt").write_text("not part of the contract")
    sha256 = artifact_digest(source).sha256
    uri = store.put(source, name="bot", sha256=sha256)
    path = store.local_path(uri, sha256=sha256)
    assert sorted(p.name for p in path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    # Every put gets its own location: a second import of the same folder never collides.
    again = store.put(source, name="bot", sha256=sha256)
    assert again != uri and store.local_path(again, sha256=sha256) != path
    with pytest.raises(ValueError):
        store.local_path("file:///etc")
    store.delete(uri)
    assert not path.exists()


def test_fsspec_store_round_trip(demo_model: Path, tmp_path: Path) -> None:
    store = _memory_store(tmp_path)
    source = good_adapter(demo_model, tmp_path / "src")
    sha256 = artifact_digest(source).sha256
    uri = store.put(source, name="bot", sha256=sha256)
    assert uri.startswith(f"{store.url}/bot/{sha256[:16]}-")
    local = store.local_path(uri, sha256=sha256)
    assert (local / "adapter_model.safetensors").read_bytes() == (source / "adapter_model.safetensors").read_bytes()
    assert store.local_path(uri, sha256=sha256) == local  # cached
    store.delete(uri)
    assert not local.exists() and not store.fs.exists(store._remote(uri))


def test_a_copy_that_does_not_match_its_digest_is_refused_and_left_nowhere(
    store: ArtifactStore, demo_model: Path, tmp_path: Path
) -> None:
    source = good_adapter(demo_model, tmp_path / "src")
    with pytest.raises(ArtifactCorrupt):
        store.put(source, name="bot", sha256="0" * 64)  # e.g. the folder changed after validation
    assert _files(store, tmp_path) == []


def test_a_partial_upload_leaves_nothing(store: ArtifactStore, demo_model: Path, tmp_path: Path) -> None:
    source = good_adapter(demo_model, tmp_path / "src")
    sha256 = artifact_digest(source).sha256
    (source / "adapter_config.json").unlink()  # weights without a config: the copy fails half-way
    with pytest.raises(FileNotFoundError):
        store.put(source, name="bot", sha256=sha256)
    assert _files(store, tmp_path) == []


def test_local_store_refuses_a_tampered_version(demo_model: Path, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    sha256 = artifact_digest(source).sha256
    uri = store.put(source, name="bot", sha256=sha256)
    weights = store.local_path(uri, sha256=sha256) / "adapter_model.safetensors"  # verified once
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorrupt) as info:
        store.local_path(uri, sha256=sha256)
    assert str(tmp_path) not in info.value.message
    weights.unlink()
    with pytest.raises(ArtifactCorrupt):
        store.local_path(uri, sha256=sha256)


def test_fsspec_store_verifies_what_it_caches(demo_model: Path, tmp_path: Path) -> None:
    store = _memory_store(tmp_path)
    source = good_adapter(demo_model, tmp_path / "src")
    sha256 = artifact_digest(source).sha256
    uri = store.put(source, name="bot", sha256=sha256)
    # A damaged local cache is fetched again from the store.
    local = store.local_path(uri, sha256=sha256)
    (local / "adapter_config.json").write_text("{}")
    assert store.local_path(uri, sha256=sha256) == local
    assert artifact_digest(local).sha256 == sha256
    # A damaged remote copy is refused, and nothing of it lands in the cache.
    store.delete(uri)
    uri = store.put(source, name="bot", sha256=sha256)
    store.fs.pipe_file(f"{store._remote(uri)}/adapter_config.json", b'{"peft_type": "LORA"}')
    with pytest.raises(ArtifactCorrupt):
        store.local_path(uri, sha256=sha256)
    assert not store._cached(uri).exists()
    assert not [p for p in (tmp_path / "cache" / "adapters").iterdir() if p.name.startswith(".")]


def test_a_version_hashed_once_is_hashed_again_after_any_change(demo_model: Path, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    sha256 = artifact_digest(source).sha256
    uri = store.put(source, name="bot", sha256=sha256)
    time.sleep(SETTLE_NS / 1e9 + 0.1)  # only files that settled before they were hashed are remembered
    path = store.local_path(uri, sha256=sha256)
    assert (str(path), sha256) in store_module._verified
    config = path / "adapter_config.json"
    config.write_text(config.read_text().replace('"r": 8', '"r": 4'))
    with pytest.raises(ArtifactCorrupt):
        store.local_path(uri, sha256=sha256)

"""Both artifact stores: immutable versions, local paths the engine can load, deletion."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from adapters.store import FsspecArtifactStore, LocalArtifactStore, make_store
from tests.utils.adapters import good_adapter


def test_local_store(demo_model: Path, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    source = good_adapter(demo_model, tmp_path / "src")
    (source / "notes.txt").write_text("not part of the contract")
    uri = store.put(source, name="bot", version=1)
    path = store.local_path(uri)
    assert sorted(p.name for p in path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    with pytest.raises(FileExistsError):
        store.put(source, name="bot", version=1)
    with pytest.raises(ValueError):
        store.local_path("file:///etc")
    store.delete(uri)
    assert not path.exists()


def test_fsspec_store_round_trip(demo_model: Path, tmp_path: Path) -> None:
    url = f"memory://switchyard-{uuid.uuid4().hex}"
    store = make_store(url, tmp_path)
    assert isinstance(store, FsspecArtifactStore)
    source = good_adapter(demo_model, tmp_path / "src")
    uri = store.put(source, name="bot", version=2)
    assert uri == f"{url}/bot/v2"
    local = store.local_path(uri)
    assert (local / "adapter_model.safetensors").read_bytes() == (source / "adapter_model.safetensors").read_bytes()
    assert store.local_path(uri) == local  # cached
    with pytest.raises(FileExistsError):
        store.put(source, name="bot", version=2)
    store.delete(uri)
    assert not local.exists() and not store.fs.exists(uri.removeprefix("memory:/"))

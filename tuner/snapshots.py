"""Dataset snapshots: immutable, content-addressed ``datasets.DatasetDict`` folders that versions point to.

A snapshot folder ``<root>/<adapter>/<id>`` holds ``data/`` (the ``DatasetDict`` with a ``train``
and a ``holdout`` split, rows in TRL's conversational prompt-completion format) and
``manifest.json``. It is written under a temporary name and renamed into place, so a reader never
sees half a snapshot, and never rewritten once there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import DatasetDict, Features

TRAIN_SPLIT = "train"
HOLDOUT_SPLIT = "holdout"
DATA_DIRNAME = "data"
MANIFEST_FILENAME = "manifest.json"

Row = dict[str, Any]
"""``{"prompt": [messages], "completion": [{"role": "assistant", "content": ...}], "request_id": ...}``"""


@dataclass(frozen=True)
class DatasetSnapshot:
    id: str
    """Recorded as a version's ``dataset_snapshot_id`` (lineage)."""
    path: Path
    train_count: int
    holdout_count: int

    @property
    def data_path(self) -> Path:
        """The ``DatasetDict`` folder, as training reads it."""
        return self.path / DATA_DIRNAME

    @property
    def count(self) -> int:
        return self.train_count + self.holdout_count


def _features() -> Features:
    from datasets import Features, List, Value

    # Declared rather than inferred, so an empty hold-out split still has its columns.
    message = {"role": Value("string"), "content": Value("string")}
    return Features({"prompt": List(message), "completion": List(message), "request_id": Value("string")})


def snapshot_id(*, adapter: str, tenant: str | None, train: Sequence[Row], holdout: Sequence[Row]) -> str:
    """The same rows in the same splits for the same adapter and tenant always get the same id."""
    content = {"adapter": adapter, "tenant": tenant, TRAIN_SPLIT: list(train), HOLDOUT_SPLIT: list(holdout)}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return f"{adapter}-{digest[:16]}"


def _checked_folder_name(adapter: str) -> str:
    if not adapter or adapter in {".", ".."} or Path(adapter).name != adapter or "\\" in adapter:
        raise ValueError(f"adapter name {adapter!r} cannot be a folder name")
    return adapter


def write_snapshot(
    *,
    train: Sequence[Row],
    holdout: Sequence[Row],
    root: Path,
    adapter: str,
    tenant: str | None = None,
    manifest: dict[str, Any] | None = None,
) -> DatasetSnapshot:
    """Save the splits under ``root/<adapter>/<id>``. Curating twice without new data makes no second
    snapshot: the existing folder is returned as it is. ``manifest`` adds to ``manifest.json``."""
    from datasets import Dataset, DatasetDict

    if not train:
        raise ValueError("no training examples to snapshot")
    identifier = snapshot_id(adapter=adapter, tenant=tenant, train=train, holdout=holdout)
    target = Path(root) / _checked_folder_name(adapter) / identifier
    snapshot = DatasetSnapshot(id=identifier, path=target, train_count=len(train), holdout_count=len(holdout))
    if target.exists():
        return snapshot
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".snapshot-", dir=target.parent))
    try:
        features = _features()
        # Column by column: ``from_list`` gives an empty split no columns at all.
        splits = {
            name: Dataset.from_dict({column: [r[column] for r in rows] for column in features}, features=features)
            for name, rows in ((TRAIN_SPLIT, train), (HOLDOUT_SPLIT, holdout))
        }
        # An empty split needs one (empty) shard named: by default ``datasets`` writes none, and
        # then cannot load the folder back.
        empty = {name: 1 for name, split in splits.items() if split.num_rows == 0}
        DatasetDict(splits).save_to_disk(str(staging / DATA_DIRNAME), num_shards=empty)
        record = {
            **(manifest or {}),
            "id": identifier,
            "adapter": adapter,
            "tenant": tenant,
            "train_count": len(train),
            "holdout_count": len(holdout),
            "created_at": datetime.now(UTC).isoformat(),
        }
        (staging / MANIFEST_FILENAME).write_text(json.dumps(record, indent=2, ensure_ascii=False, default=str))
        try:
            staging.rename(target)
        except OSError:
            # Another process renamed the same snapshot into place first (a non-empty target).
            if not target.exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return snapshot


def load_snapshot(path: Path) -> DatasetDict:
    """The ``train`` and ``holdout`` splits of the snapshot folder ``path``."""
    from datasets import load_from_disk

    return load_from_disk(str(Path(path) / DATA_DIRNAME))

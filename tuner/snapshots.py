"""Dataset snapshots: immutable, content-addressed ``datasets`` folders that versions point to."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DatasetSnapshot:
    id: str
    """Recorded as a version's ``dataset_snapshot_id`` (lineage)."""
    path: Path
    count: int


def write_snapshot(examples: list[dict[str, Any]], *, root: Path, adapter: str) -> DatasetSnapshot:
    """Save ``examples`` as a Hugging Face dataset under ``root/<adapter>/<id>``. The same examples
    always get the same id, so curating twice without new feedback makes no second snapshot."""
    from datasets import Dataset

    if not examples:
        raise ValueError("no examples to snapshot")
    digest = hashlib.sha256(json.dumps(examples, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]
    snapshot_id = f"{adapter}-{digest}"
    target = root / adapter / snapshot_id
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".snapshot-", dir=target.parent))
        try:
            Dataset.from_list(examples).save_to_disk(str(staging / "data"))
            (staging / "manifest.json").write_text(
                json.dumps({"id": snapshot_id, "count": len(examples), "created_at": datetime.now(UTC).isoformat()})
            )
            staging.rename(target)
        except FileExistsError:  # another process wrote the same snapshot first
            shutil.rmtree(staging, ignore_errors=True)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return DatasetSnapshot(id=snapshot_id, path=target, count=len(examples))


def load_snapshot(path: Path):  # type: ignore[no-untyped-def]
    from datasets import load_from_disk

    return load_from_disk(str(Path(path) / "data"))

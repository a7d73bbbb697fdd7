"""Factories for PEFT adapter folders, good and deliberately broken."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from switchyard.demo import build_demo_adapter

_CACHE: dict[tuple[Path, int, int], Path] = {}


def good_adapter(base_model: Path, folder: Path, *, seed: int = 11, rank: int = 8) -> Path:
    """A valid adapter copied into ``folder`` (built once per base, seed and rank)."""
    key = (base_model, seed, rank)
    if key not in _CACHE:
        _CACHE[key] = build_demo_adapter(
            base_model, base_model.parent / f".factory-{seed}-{rank}", seed=seed, rank=rank
        )
    shutil.copytree(_CACHE[key], folder)
    return folder


def edit_config(folder: Path, **changes: object) -> Path:
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))
    return folder

"""Import = fetch from a source into a private scratch folder, then validate and register."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlmodel import Session

from adapters.base_model import BaseModelSpec
from adapters.models import AdapterVersion
from adapters.registry import register_version
from adapters.sources import AdapterSource
from adapters.store import ArtifactStore
from adapters.validation import EngineLimits


def import_version(
    *,
    session: Session,
    store: ArtifactStore,
    name: str,
    source: AdapterSource,
    base: BaseModelSpec,
    limits: EngineLimits,
    scratch_dir: Path,
    reserved_names: frozenset[str] = frozenset(),
    **metadata: Any,
) -> AdapterVersion:
    """Register ``source`` as a new candidate version of ``name``; the scratch copy is removed.

    ``reserved_names``: model names an adapter may not take (the served base model's)."""
    scratch_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_dir) as tmp:
        folder = source.fetch(Path(tmp))
        return register_version(
            session=session,
            store=store,
            name=name,
            source=folder,
            base=base,
            limits=limits,
            source_label=source.label,
            source_param=source.param,
            reserved_names=reserved_names,
            **metadata,
        )

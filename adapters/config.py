"""What the registry needs from the root settings: the engine's limits and the artifact store."""

from __future__ import annotations

from adapters.store import ArtifactStore, make_store
from adapters.validation import EngineLimits
from switchyard.config import Settings


def engine_limits(settings: Settings) -> EngineLimits:
    """What an adapter must fit to be registered for this engine."""
    return EngineLimits(
        max_lora_rank=settings.engine.max_lora_rank, max_adapter_bytes=settings.registry.max_adapter_bytes
    )


def artifact_store(settings: Settings) -> ArtifactStore:
    """The configured store: a folder (default ``<data_dir>/adapters``) or an fsspec URL."""
    return make_store(settings.registry.artifact_store, settings.data_dir)

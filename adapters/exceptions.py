"""Domain exceptions of the adapter registry."""

from __future__ import annotations

from switchyard.exceptions import SwitchyardError


class AdapterError(SwitchyardError):
    """Base class of the registry's errors."""


class InvalidAdapter(AdapterError):
    """The adapter folder or its metadata breaks the PEFT contract or the engine's limits."""


class AdapterNotFound(AdapterError):
    """No adapter (or no such version of it) is registered."""


class AdapterConflict(AdapterError):
    """The request conflicts with the registry's current state (e.g. a duplicate name)."""


class ArtifactCorrupt(AdapterError):
    """A stored version's files no longer match the sha256 recorded when it was registered."""

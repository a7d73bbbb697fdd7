"""Domain exceptions of the adapter registry."""

from __future__ import annotations


class AdapterError(Exception):
    """Base class. ``param`` names the offending input field when there is one."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidAdapter(AdapterError):
    """The adapter folder or its metadata breaks the PEFT contract or the engine's limits."""


class AdapterNotFound(AdapterError):
    """No adapter (or no such version of it) is registered."""


class AdapterConflict(AdapterError):
    """The request conflicts with the registry's current state (e.g. a duplicate name)."""

"""The root of every domain exception; the gateway maps subclasses to HTTP in one place."""

from __future__ import annotations


class SwitchyardError(Exception):
    """A domain error with a client-safe ``message``; ``param`` names the offending input field."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

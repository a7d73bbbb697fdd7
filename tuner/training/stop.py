"""Stopping a training run early and cleanly: the contract between the child and its parent."""

from __future__ import annotations

import threading

EXIT_CANCELLED = 143
"""The child's exit code after a cancel (SIGTERM) it handled: 128 + SIGTERM, as a shell reports
it. Python exits with 1 on an uncaught exception and 2 on a usage error, so 143 stays distinct."""


class TrainingCancelled(Exception):
    """Raised in the child when a stop was requested; the run saved no adapter."""


class StopRequest:
    """Set from a signal handler or a watcher thread; read by the trainer at each step boundary.

    Inside the training loop a stop only sets the flag, so the current optimizer step and the
    checkpoint it may write finish intact. Outside it (loading the model, tokenizing the data)
    there is nothing to finish: :meth:`request` raises :class:`TrainingCancelled` in the main
    thread at once.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.in_loop = False
        self.reason = ""

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str, *, raise_outside_loop: bool = True) -> None:
        first = not self._event.is_set()
        self.reason = self.reason or reason
        self._event.set()
        if first and raise_outside_loop and not self.in_loop:
            raise TrainingCancelled(reason)

    def check(self) -> None:
        """Raise if a stop was requested (between the phases of a run)."""
        if self._event.is_set():
            raise TrainingCancelled(self.reason)

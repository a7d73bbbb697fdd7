"""Admission control: a bound on sequences in the engine, so overload becomes a fast 429."""

from __future__ import annotations

from gateway.exceptions import QueueFull


class AdmissionController:
    """Counts sequences in flight. Used from the event loop only, so check-and-add cannot race."""

    def __init__(self, limit: int, *, retry_after_s: int) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.in_flight = 0

    def acquire(self, sequences: int = 1) -> None:
        """Take ``sequences`` slots, or raise :class:`QueueFull`."""
        if self.in_flight + sequences > self.limit:
            raise QueueFull(
                f"The server is at capacity ({self.limit} sequences in flight). Retry after {self.retry_after_s}s.",
                retry_after_s=self.retry_after_s,
            )
        self.in_flight += sequences

    def release(self, sequences: int = 1) -> None:
        self.in_flight -= sequences

"""Where recent rows sit in the spool until the drain stores them, for lookups by request id."""

from __future__ import annotations

from collections import OrderedDict


class PendingIndex:
    """Where each recent row sits in the spool until it is stored, so feedback that arrives before
    the drain can find its row. Bounded: past ``limit`` the oldest entries are forgotten."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._positions: OrderedDict[str, int] = OrderedDict()  # in spool order

    def add(self, request_id: str, position: int) -> None:
        self._positions.pop(request_id, None)
        self._positions[request_id] = position
        while len(self._positions) > self.limit:
            self._positions.popitem(last=False)

    def get(self, request_id: str) -> int | None:
        return self._positions.get(request_id)

    def forget_before(self, position: int) -> None:
        while self._positions and next(iter(self._positions.values())) < position:
            self._positions.popitem(last=False)

    def __len__(self) -> int:
        return len(self._positions)

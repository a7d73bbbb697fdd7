"""Authentication with a short-lived cache of key lookups.

The cache keeps the request path off the database, and lets serving go on while the database
is down (the design promises that): a cached key is trusted for ``ttl_s``; past that it is
looked up again, and if the database cannot answer, the last answer stands for up to
``stale_s``. A revocation made through this gateway takes effect at once; one made by another
process takes effect within ``ttl_s``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.auth import crud
from gateway.auth.models import ADMIN, Principal
from gateway.exceptions import AuthenticationFailed, ServiceUnavailable
from switchyard.db import session_scope

logger = logging.getLogger(__name__)


@dataclass
class _Entry:
    principal: Principal | None
    checked_at: float


class AuthService:
    def __init__(self, *, db: Engine, admin_key: str, ttl_s: float, stale_s: float, max_entries: int = 10_000) -> None:
        self._db = db
        self._admin_key = admin_key.encode()
        self._ttl_s = ttl_s
        self._stale_s = stale_s
        self._max_entries = max_entries
        self._cache: dict[str, _Entry] = {}

    def _lookup(self, secret: str) -> Principal | None:
        with session_scope(self._db) as session:
            row = crud.get_active_key(session=session, secret=secret)
        if row is None:
            return None
        return Principal(
            key_id=row.id,
            name=row.name,
            tenant=row.tenant,
            allowed_adapters=tuple(row.allowed_adapters),
            log_content=row.log_content,
        )

    async def authenticate(self, secret: str | None) -> Principal:
        """The admin key and fresh cache hits are answered on the event loop; only a lookup
        that needs the database goes to a worker thread."""
        if secret and not hmac.compare_digest(secret.encode(), self._admin_key):
            entry = self._cache.get(crud.hash_key(secret))
            if entry is not None and time.monotonic() - entry.checked_at <= self._ttl_s:
                return self._verdict(entry)
            return await asyncio.to_thread(self.authenticate_blocking, secret)
        return self.authenticate_blocking(secret)

    @staticmethod
    def _verdict(entry: _Entry) -> Principal:
        if entry.principal is None:
            raise AuthenticationFailed("Incorrect API key provided, or the key was revoked.")
        return entry.principal

    def authenticate_blocking(self, secret: str | None) -> Principal:
        """The full check; it may query the database, so it runs off the event loop."""
        if not secret:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it in the Authorization header as 'Bearer YOUR_KEY'."
            )
        if hmac.compare_digest(secret.encode(), self._admin_key):
            return ADMIN
        key_hash = crud.hash_key(secret)
        now = time.monotonic()
        entry = self._cache.get(key_hash)
        if entry is None or now - entry.checked_at > self._ttl_s:
            try:
                entry = _Entry(self._lookup(secret), now)
            except SQLAlchemyError as exc:
                if entry is None or now - entry.checked_at > self._stale_s:
                    logger.error("key lookup failed and no cached answer is fresh enough: %s", exc)
                    raise ServiceUnavailable("Authentication is temporarily unavailable; retry shortly.") from None
                logger.warning("database unavailable; using the cached answer for a key: %s", exc)
            else:
                if len(self._cache) >= self._max_entries:
                    self._cache.clear()
                self._cache[key_hash] = entry
        return self._verdict(entry)

    def forget(self, key_id: int) -> None:
        """Drop a revoked key from the cache at once."""
        for key_hash, entry in list(self._cache.items()):
            if entry.principal is not None and entry.principal.key_id == key_id:
                del self._cache[key_hash]

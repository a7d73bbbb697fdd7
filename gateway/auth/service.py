"""Authentication with a short-lived cache of key lookups.

The cache keeps the request path off the database, and lets serving go on while the database
is down (the design promises that): a cached key is trusted for ``cache_ttl_s``; past that it is
looked up again, and if the database cannot answer, the last answer stands for up to
``cache_stale_s``. A revocation made through this gateway takes effect at once; one made by
another process takes effect within ``cache_ttl_s``.

Only keys that exist are cached, in a bounded LRU: a flood of made-up keys costs lookups but
can never push the real keys out.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass

from cachetools import LRUCache
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.auth import crud
from gateway.auth.models import ADMIN, Principal
from gateway.exceptions import AuthenticationFailed, ServiceUnavailable
from switchyard.config import AuthSettings
from switchyard.db import is_connection_error, session_scope

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    checked_at: float


class AuthService:
    def __init__(self, *, db: Engine, admin_key: str, metrics_token: str, settings: AuthSettings) -> None:
        self._db = db
        self._admin_key = admin_key.encode()
        self._metrics_token = metrics_token.encode()
        self._ttl_s = settings.cache_ttl_s
        self._stale_s = settings.cache_stale_s
        self._cache: LRUCache[str, _Entry] = LRUCache(maxsize=settings.cache_max_keys)

    def _lookup(self, secret: str) -> Principal | None:
        with session_scope(self._db) as session:
            row = crud.get_active_key(session=session, secret=secret)
        return None if row is None else row.principal()

    async def authenticate(self, secret: str | None) -> Principal:
        """The admin key and fresh cache hits are answered on the event loop; only a lookup
        that needs the database goes to a worker thread."""
        if secret and not hmac.compare_digest(secret.encode(), self._admin_key):
            entry = self._cache.get(crud.hash_key(secret))
            if entry is not None and time.monotonic() - entry.checked_at <= self._ttl_s:
                return entry.principal
            return await asyncio.to_thread(self.authenticate_blocking, secret)
        return self.authenticate_blocking(secret)

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
        if entry is not None and now - entry.checked_at <= self._ttl_s:
            return entry.principal
        try:
            principal = self._lookup(secret)
        except SQLAlchemyError as exc:
            if not is_connection_error(exc):
                raise  # a bug (a missing column, say) must not pass for an outage
            if entry is None or now - entry.checked_at > self._stale_s:
                logger.error("key lookup failed and no cached answer is fresh enough: %s", exc)
                raise ServiceUnavailable("Authentication is temporarily unavailable; retry shortly.") from None
            logger.warning("database unavailable; using the cached answer for a key: %s", exc)
            return entry.principal
        if principal is None:
            self._cache.pop(key_hash, None)
            raise AuthenticationFailed("Incorrect API key provided, or the key was revoked.")
        self._cache[key_hash] = _Entry(principal, now)
        return principal

    def is_metrics_token(self, secret: str | None) -> bool:
        """The read-only token Prometheus scrapes ``/metrics`` with (it opens nothing else)."""
        return bool(secret) and hmac.compare_digest(secret.encode(), self._metrics_token)  # type: ignore[union-attr]

    def forget(self, key_id: int) -> None:
        """Drop a revoked (or changed) key from the cache at once."""
        for key_hash, entry in list(self._cache.items()):
            if entry.principal.key_id == key_id:
                self._cache.pop(key_hash, None)

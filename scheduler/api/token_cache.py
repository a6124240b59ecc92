"""Recently verified API tokens, so a busy client's requests skip the token lookup.

A submit's own work is a few statements; looking its bearer token up in the store was one more
round trip per request (two with the pool's pre-ping). The cache keeps the principal of a user
or admin token for ``ttl_s`` after the store verified it, keyed by the secret's SHA-256 (the
secret itself is never kept).

Revocation is honoured: a revoke through this process's service empties the cache at once (it
watches the service's ``tokens_revoked_total`` counter); one made elsewhere (``greenlight token
revoke``, another API replica) takes effect here within ``ttl_s``, as does an expiry. Job and
bootstrap credentials are never cached: whether they work depends on their job's state.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping

from scheduler.domain import Principal, Role

TTL_S = 2.0
MAX_ENTRIES = 10_000
CACHED_ROLES = frozenset({Role.USER, Role.ADMIN})


class TokenCache:
    def __init__(
        self, ttl_s: float = TTL_S, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._revocations = 0.0
        self._lock = threading.Lock()

    def principal(
        self,
        secret: str,
        counters: Mapping[str, float],
        verify: Callable[[str], Principal],
    ) -> Principal:
        """The principal for ``secret``: cached, or ``verify(secret)`` (which raises for a bad
        token; a refusal is never cached)."""
        hit = self.cached(secret, counters)
        if hit is not None:
            return hit
        key = _key(secret)
        now = self._clock()
        principal = verify(secret)
        if principal.role in CACHED_ROLES:
            with self._lock:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
                self._entries[key] = (now + self._ttl_s, principal)
        return principal

    def cached(self, secret: str, counters: Mapping[str, float]) -> Principal | None:
        """The principal for ``secret`` if it was verified less than ``ttl_s`` ago and nothing
        was revoked since; None otherwise. No I/O: the API calls it on its event loop."""
        key = _key(secret)
        now = self._clock()
        revocations = float(counters.get("tokens_revoked_total", 0))
        with self._lock:
            if revocations != self._revocations:
                self._entries.clear()
                self._revocations = revocations
            hit = self._entries.get(key)
            return hit[1] if hit is not None and hit[0] > now else None


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()

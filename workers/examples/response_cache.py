"""What both example services do with a response: cache it for a repeated body, gzip it when asked.

* ``ResponseCache``: a bounded LRU of response bodies keyed by the SHA-256 of the request body,
  so a repeated input is answered without running the model (the seed's "cache repeated
  inputs"). Thread-safe; counts hits and misses.
* ``gzip_body``: the body gzipped when the client's ``Accept-Encoding`` accepts gzip (RFC 9110:
  ``gzip``, ``x-gzip`` or ``*`` with a non-zero q-value) and the body is worth compressing,
  with the headers to send (``Content-Encoding``, and ``Vary: Accept-Encoding`` always, so a
  shared cache keeps the two forms apart).
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict

DEFAULT_MAX_ENTRIES = 1024
# Below this, gzip's header and trailer (18 bytes) eat most of the saving.
MIN_GZIP_BYTES = 256
GZIP_LEVEL = 6


class ResponseCache:
    """At most ``max_entries`` response bodies, least recently used dropped first."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(body: bytes) -> bytes:
        return hashlib.sha256(body).digest()

    def get(self, body: bytes) -> bytes | None:
        """The cached response for a request ``body``, or None (counted as a miss)."""
        key = self.key(body)
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, body: bytes, response: bytes) -> None:
        if self.max_entries == 0:
            return
        key = self.key(body)
        with self._lock:
            self._entries[key] = response
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value accepts gzip."""
    for part in (accept_encoding or "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


def gzip_body(body: bytes, accept_encoding: str | None) -> tuple[bytes, dict[str, str]]:
    """``body`` as sent to a client with that ``Accept-Encoding``, and the headers it needs."""
    headers = {"Vary": "Accept-Encoding"}
    if len(body) < MIN_GZIP_BYTES or not accepts_gzip(accept_encoding):
        return body, headers
    headers["Content-Encoding"] = "gzip"
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0), headers

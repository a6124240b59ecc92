"""The worker's one kind of request: a JSON POST to the Greenlight API, on the standard library.

Every job pays for the runner's imports before its command starts, and ``requests`` was more
than half of them (~50 of ~90 ms on a 2-core node: 30 trivial jobs ran 10-20 % slower through
Greenlight than straight on Ray, issue 8). The runner posts a handful of times per job (the
credential exchange, energy every ``--interval-s``, progress, an endpoint), each on a fresh
connection: with 30 s between reports a kept-alive one would have been closed by the server
(uvicorn closes idle ones after 5 s) and retrying a POST on a stale connection is what a
one-time credential must not do.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Timeout = tuple[float, float]
"""(connect, read) seconds, as ``requests`` took them."""


class TransportError(Exception):
    """No answer: the API could not be reached, or the connection broke or timed out."""


@dataclass(frozen=True)
class Answer:
    status: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    def json(self) -> Any:
        """The body parsed; raises ValueError when it is not JSON."""
        return json.loads(self.text)


def post(url: str, *, token: str, timeout: Timeout, body: dict[str, Any] | None = None) -> Answer:
    """POST ``body`` as JSON (none: an empty body) to ``url`` with ``token`` as its bearer.
    Raises TransportError when no HTTP answer came, ValueError for a URL that is not
    http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    connect_s, read_s = timeout
    https = parts.scheme == "https"
    conn_type = http.client.HTTPSConnection if https else http.client.HTTPConnection
    conn = conn_type(parts.hostname, parts.port, timeout=connect_s)
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Connection": "close",
    }
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(read_s)
        conn.request("POST", path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as e:  # socket.timeout is an OSError
        raise TransportError(f"{type(e).__name__}: {e}") from e
    finally:
        conn.close()
    return Answer(status=response.status, text=raw.decode("utf-8", errors="replace"))

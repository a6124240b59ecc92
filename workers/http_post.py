"""The worker's one kind of request: a JSON POST to the Greenlight API, on the standard library.

Every job pays for the runner's imports before its command starts: ``requests`` was more than
half of them (~50 of ~90 ms on a 2-core node, where 30 trivial jobs ran 10-20 % slower through
Greenlight than straight on Ray, issue 8), and ``http.client`` alone (with the ``email`` and
``ssl`` modules it loads) costs 18 ms. A plain-HTTP POST is written here on a socket: one
request on a fresh connection (``Connection: close``), the answer read to its end. HTTPS goes
through ``http.client``, imported only then.

Each request has its own connection: the runner posts a handful of times per job (the
credential exchange, energy every ``--interval-s``, progress, an endpoint), 30 s apart, so a
kept-alive one would have been closed by the server (uvicorn closes idle ones after 5 s), and
retrying a POST on a stale connection is what a one-time credential must not do.
"""

from __future__ import annotations

import json
import socket
from typing import Any, NamedTuple
from urllib.parse import SplitResult, urlsplit

Timeout = tuple[float, float]
"""(connect, read) seconds, as ``requests`` took them."""

MAX_ANSWER_BYTES = 4 * 1024 * 1024  # the API answers a few hundred bytes; a proxy's page more


class TransportError(Exception):
    """No answer: the API could not be reached, or the connection broke or timed out, or what
    came back was not HTTP."""


class Answer(NamedTuple):
    status: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    def json(self) -> Any:
        """The body parsed; raises ValueError when it is not JSON."""
        return json.loads(self.text)

    def json_object(self) -> dict[str, Any]:
        """The body when it is a JSON object; {} otherwise (not JSON, or another value)."""
        try:
            answer = self.json()
        except ValueError:
            return {}
        return answer if isinstance(answer, dict) else {}


def post(url: str, *, token: str, timeout: Timeout, body: dict[str, Any] | None = None) -> Answer:
    """POST ``body`` as JSON (none: an empty body) to ``url`` with ``token`` as its bearer.
    Raises TransportError when no HTTP answer came, ValueError for a URL that is not
    http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Host": parts.netloc.rsplit("@", 1)[-1],
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Content-Length": str(len(payload)),
        "Connection": "close",
    }
    try:
        if parts.scheme == "https":
            return _post_https(parts, path, headers, payload, timeout)
        return _post_http(parts, path, headers, payload, timeout)
    except OSError as e:  # refused, reset, timed out (socket.timeout is an OSError)
        raise TransportError(f"{type(e).__name__}: {e}") from e


def _post_http(
    parts: SplitResult, path: str, headers: dict[str, str], payload: bytes, timeout: Timeout
) -> Answer:
    connect_s, read_s = timeout
    host = parts.hostname or ""
    with socket.create_connection((host, parts.port or 80), timeout=connect_s) as sock:
        sock.settimeout(read_s)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + payload)
        raw = b""
        # To the connection's end, or to the end of the body where the answer says where that
        # is (a proxy might keep the connection open despite "Connection: close").
        while not _complete(raw) and (chunk := sock.recv(65536)):
            raw += chunk
            if len(raw) > MAX_ANSWER_BYTES:
                raise TransportError(f"the answer exceeds {MAX_ANSWER_BYTES} bytes")
    return parse_answer(raw)


def _head(raw: bytes) -> tuple[str, dict[str, str], bytes] | None:
    """The status line, header fields (names lower-cased) and what follows them; None until
    the head has been read whole."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return lines[0], fields, body


def _chunked(fields: dict[str, str]) -> bool:
    return "chunked" in fields.get("transfer-encoding", "").lower()


def _complete(raw: bytes) -> bool:
    parsed = _head(raw)
    if parsed is None:
        return False
    _, fields, body = parsed
    if _chunked(fields):
        return body.endswith(b"0\r\n\r\n")
    length = fields.get("content-length")
    if length is None:
        return False
    # A bad length ends the reading; parse_answer says what is wrong with it.
    return not length.isdigit() or len(body) >= int(length)


def parse_answer(raw: bytes) -> Answer:
    """An HTTP/1.x answer read to the connection's end. Raises TransportError when it is
    not one."""
    parsed = _head(raw)
    status_line = parsed[0].split(" ", 2) if parsed is not None else []
    if parsed is None or len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
        raise TransportError(f"not an HTTP answer: {raw[:80]!r}")
    _, fields, body = parsed
    try:
        status = int(status_line[1])
    except ValueError:
        raise TransportError(f"not an HTTP status: {parsed[0][:80]!r}") from None
    if _chunked(fields):
        body = _unchunk(body)
    elif "content-length" in fields:
        try:
            length = int(fields["content-length"])
        except ValueError:
            raise TransportError("a bad Content-Length") from None
        if len(body) < length:
            raise TransportError(f"the answer ended after {len(body)} of {length} bytes")
        body = body[:length]
    return Answer(status=status, text=body.decode("utf-8", errors="replace"))


def _unchunk(body: bytes) -> bytes:
    out: list[bytes] = []
    rest = body
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise TransportError("a bad chunk in the answer") from None
        if not sep or len(rest) < size:
            raise TransportError("the answer ended inside a chunk")
        if size == 0:
            return b"".join(out)
        out.append(rest[:size])
        rest = rest[size + 2 :]


def _post_https(
    parts: SplitResult, path: str, headers: dict[str, str], payload: bytes, timeout: Timeout
) -> Answer:
    import http.client  # with ssl and email: only an HTTPS API pays for them

    connect_s, read_s = timeout
    conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=connect_s)
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(read_s)
        conn.request("POST", path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read(MAX_ANSWER_BYTES + 1)
    except http.client.HTTPException as e:
        raise TransportError(f"{type(e).__name__}: {e}") from e
    finally:
        conn.close()
    if len(raw) > MAX_ANSWER_BYTES:
        raise TransportError(f"the answer exceeds {MAX_ANSWER_BYTES} bytes")
    return Answer(status=response.status, text=raw.decode("utf-8", errors="replace"))


def jittered(delay_s: float) -> float:
    """``delay_s`` scaled by a random factor in [0.5, 1): retries of many workers spread out.
    ``random`` is imported here, on a retry, not with the module on every job's start."""
    import random

    return random.uniform(0.5, 1.0) * delay_s

"""Request telemetry (one structured log record and one metrics observation per request) and
the request body size limit.

A pure ASGI middleware (no BaseHTTPMiddleware), so streaming bodies and context pass through.
Log records carry ``method``, ``path``, ``route``, ``status``, ``duration_ms`` and ``client`` as
attributes for the JSON formatter; the message is readable on its own for text logs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scheduler.api.errors import error_body_bytes
from scheduler.api.metrics import ApiMetrics

logger = logging.getLogger("scheduler.api.access")

UNMATCHED_ROUTE = "<unmatched>"


class RequestTelemetry:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started_s = time.perf_counter()
        status = 500  # what the client sees if the app dies before starting a response
        recorded = False

        async def send_and_watch(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Recorded before the last byte leaves: whoever got the response can rely on
                # the log line and the metric already being there.
                recorded = True
                self._record(scope, status, time.perf_counter() - started_s)
            await send(message)

        try:
            await self._app(scope, receive, send_and_watch)
        finally:
            if not recorded:
                self._record(scope, status, time.perf_counter() - started_s)

    def _record(self, scope: Scope, status: int, duration_s: float) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED_ROUTE
        method = str(scope.get("method", ""))
        self._metrics.observe(method, template, status, duration_s)
        client = scope.get("client")
        logger.info(
            "%s %s %d %.1fms",
            method,
            scope.get("path", ""),
            status,
            duration_s * 1000.0,
            extra={
                "method": method,
                "path": scope.get("path", ""),
                "route": template,
                "status": status,
                "duration_ms": round(duration_s * 1000.0, 3),
                "client": f"{client[0]}:{client[1]}" if client else None,
            },
        )


DEFAULT_MAX_BODY_BYTES = 1_048_576
# ``POST /v1/jobs/batch`` carries up to 10,000 jobs (about 3 KiB each at most).
BATCH_PATH = "/v1/jobs/batch"
MAX_BATCH_BODY_BYTES = 32 * 1_048_576


class BodySizeLimit:
    """Answers 413 for a request body over ``max_body_bytes``, before any route parses it.

    A declared ``Content-Length`` over the limit is refused without reading the body; a
    chunked body is read up to the limit and refused as soon as it passes it. A body within the
    limit is handed on unchanged.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self._app = app
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit_b = (
            max(self._max_body_bytes, MAX_BATCH_BODY_BYTES)
            if scope.get("path") == BATCH_PATH
            else self._max_body_bytes
        )
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit_b:
            await self._refuse(send, limit_b)
            return
        chunks: list[bytes] = []
        size_b = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self._app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size_b += len(chunk)
            if size_b > limit_b:
                await self._refuse(send, limit_b)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self._app(scope, _replay([body], receive), send)

    async def _refuse(self, send: Send, limit_b: int) -> None:
        payload = error_body_bytes(413, f"request body over the limit of {limit_b} bytes")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed

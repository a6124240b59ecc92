"""Request telemetry: one structured log record and one metrics observation per request.

A pure ASGI middleware (no BaseHTTPMiddleware), so streaming bodies and context pass through.
Log records carry ``method``, ``path``, ``route``, ``status``, ``duration_ms`` and ``client`` as
attributes for the JSON formatter; the message is readable on its own for text logs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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

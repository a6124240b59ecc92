"""A real HTTP server on loopback that replays the providers' recorded response formats.

:class:`ProviderServer` is a ``ThreadingHTTPServer`` on ``127.0.0.1``, port 0, in a thread. Each
path (a regex matched against the URL path) is scripted with replies served in order, the last
one repeating: success bodies, any status, ``Retry-After`` and other headers, slow responses
(``delay_s``), bodies cut short (``truncate_at``) or connections dropped without a reply. The
most recently scripted matching route wins, so a test overrides one path with a fault.

The vendor fakes below install routes that replay the recorded samples in ``provider_samples/``
with their timestamps shifted to the test's ``now``, and check auth and zones as the real APIs
do.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SAMPLES_DIR = Path(__file__).resolve().parent / "provider_samples"
TIME_KEYS = frozenset(
    {
        "datetime",
        "updatedAt",
        "createdAt",
        "point_time",
        "generated_at",
        "last_updated",
        "from",
        "to",
        "timestamp",
        "time",
        "generatedAt",
        "requestedAt",
        "dataStartAt",
        "dataEndAt",
    }
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Reply:
    """One scripted response. ``body`` is JSON-encoded unless it is bytes or str.

    ``truncate_at`` sends only that many body bytes (after a Content-Length for all of them)
    and closes; ``drop`` closes the connection without any response.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    truncate_at: int | None = None
    drop: bool = False

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return b"" if self.body is None else json.dumps(self.body).encode()


Responder = Reply | Callable[[Request], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 drops SYNs when many regions connect at once, and
    # each dropped SYN costs the client a 1 s retransmit.
    request_queue_size = 128
    owner: ProviderServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY each response waits for
    # the client's delayed ACK (~40 ms on Linux loopback).
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def do_GET(self) -> None:
        self.server.owner._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr log."""


class ProviderServer:
    """Scriptable loopback HTTP server. Use as a context manager or start()/stop()."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], list[Responder]]] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self.requests: list[Request] = []
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ProviderServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection: the provider is down."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            for connection in list(self._connections):
                with contextlib.suppress(OSError):  # already closed by the client
                    connection.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def route(self, pattern: str, *responders: Responder) -> None:
        """Serve ``responders`` in order (the last repeats) for paths matching ``pattern``."""
        with self._lock:
            self._routes.append((re.compile(pattern), list(responders)))

    def requests_to(self, pattern: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if re.fullmatch(pattern, r.path)]

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(connection)

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            for pattern, responders in reversed(self._routes):
                if pattern.fullmatch(request.path):
                    responder = responders.pop(0) if len(responders) > 1 else responders[0]
                    break
            else:
                return Reply(404, {"error": f"no route for {request.path}"})
        return responder(request) if callable(responder) else responder

    def _serve(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        request = Request(
            "GET",
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in handler.headers.items()},
        )
        reply = self._next(request)
        if reply.delay_s and self._stopping.wait(reply.delay_s):
            reply = Reply(drop=True)
        if reply.drop:
            handler.close_connection = True
            return
        body = reply.encoded()
        handler.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if reply.truncate_at is not None:
            handler.wfile.write(body[: reply.truncate_at])
            handler.close_connection = True
            return
        handler.wfile.write(body)


# --- recorded samples, shifted in time -----------------------------------------------------


@functools.cache
def load_sample(name: str) -> Any:
    """A recorded body, parsed once. Shared: copy it (``shift_times`` does) before editing."""
    return json.loads((SAMPLES_DIR / name).read_text())


def parse_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def format_like(original: str, when: datetime) -> str:
    """``when`` in the same ISO style as ``original`` (vendors differ)."""
    when = when.astimezone(UTC)
    if re.search(r"\.\d{3}Z$", original):
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    if re.search(r"T\d{2}:\d{2}Z$", original):
        return when.strftime("%Y-%m-%dT%H:%MZ")
    if original.endswith("Z"):
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return when.isoformat()


def shift_times(obj: Any, delta: timedelta) -> Any:
    """A copy of JSON ``obj`` with every timestamp under a TIME_KEYS key moved by ``delta``."""
    if isinstance(obj, list):
        return [shift_times(item, delta) for item in obj]
    if isinstance(obj, dict):
        return {
            key: format_like(value, parse_iso(value) + delta)
            if key in TIME_KEYS and isinstance(value, str)
            else shift_times(value, delta)
            for key, value in obj.items()
        }
    return obj


def floor_to(when: datetime, step_s: int) -> datetime:
    seconds = int(when.timestamp())
    return datetime.fromtimestamp(seconds - seconds % step_s, UTC)


# --- vendor fakes --------------------------------------------------------------------------


class ElectricityMapsFake:
    """EM v3 at ``<url>/v3``: ``auth-token`` checked; only ``zone`` is known (400 otherwise)."""

    forecast_path = r"/v3/carbon-intensity/forecast"
    actuals_path = r"/v3/carbon-intensity/(history|past-range)"
    first_forecast_g_per_kwh = 557.0
    resolution_s = 3600

    def __init__(
        self, server: ProviderServer, now: datetime, *, zone: str = "DE", api_key: str = "em-key"
    ) -> None:
        self.base_url, self.zone, self.api_key = f"{server.url}/v3", zone, api_key
        hour = floor_to(now, 3600)
        forecast = load_sample("electricitymaps_forecast.json")
        self.forecast = shift_times(forecast, hour - parse_iso(forecast["forecast"][0]["datetime"]))
        history = load_sample("electricitymaps_history.json")
        self._history = history
        self.history = shift_times(history, hour - parse_iso(history["history"][-1]["datetime"]))
        server.route(self.forecast_path, self._guard(lambda r: Reply(body=self.forecast)))
        server.route(
            r"/v3/carbon-intensity/history", self._guard(lambda r: Reply(body=self.history))
        )
        server.route(r"/v3/carbon-intensity/past-range", self._guard(self._past_range))

    def forecast_body(self) -> Any:
        return self.forecast

    def _guard(self, reply: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
        def serve(request: Request) -> Reply:
            if request.headers.get("auth-token") != self.api_key:
                return Reply(401, {"error": "Unauthorized: invalid auth-token"})
            if request.param("zone") != self.zone:
                return Reply(400, {"error": f"Zone '{request.param('zone')}' is not supported"})
            return reply(request)

        return serve

    def _past_range(self, request: Request) -> Reply:
        start = floor_to(parse_iso(request.param("start") or ""), 3600)
        end = parse_iso(request.param("end") or "")
        items = self._history["history"]
        shifted = shift_times(items, start - parse_iso(items[0]["datetime"]))
        return Reply(
            body={"zone": self.zone, "data": [i for i in shifted if parse_iso(i["datetime"]) < end]}
        )


class WattTimeFake:
    """WattTime: ``/login`` (basic auth) issues tokens; data calls need a live bearer token."""

    forecast_path = r"/v3/forecast"
    actuals_path = r"/v3/historical"
    first_forecast_g_per_kwh = 870 * 0.453592
    resolution_s = 300

    def __init__(
        self,
        server: ProviderServer,
        now: datetime,
        *,
        zone: str = "CAISO_NORTH",
        username: str = "freddo",
        password: str = "the_frog",
    ) -> None:
        self.base_url, self.zone = server.url, zone
        self._auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.tokens: set[str] = set()
        self.logins = 0
        start = floor_to(now, 300)
        forecast = load_sample("watttime_forecast.json")
        self.forecast = shift_times(forecast, start - parse_iso(forecast["meta"]["generated_at"]))
        server.route(r"/login", self._login)
        server.route(self.forecast_path, self._guard(lambda r: Reply(body=self.forecast)))
        server.route(self.actuals_path, self._guard(self._historical))

    def forecast_body(self) -> Any:
        return self.forecast

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def _login(self, request: Request) -> Reply:
        if request.headers.get("authorization") != self._auth:
            return Reply(403, {"error": "Invalid username or password"})
        self.logins += 1
        token = f"token-{self.logins}"
        self.tokens.add(token)
        return Reply(body={"token": token})

    def _guard(self, reply: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
        def serve(request: Request) -> Reply:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.tokens:
                return Reply(401, {"error": "Token expired", "message": "Please log in again"})
            if request.param("region") != self.zone:
                return Reply(403, load_sample("watttime_invalid_scope.json"))
            return reply(request)

        return serve

    def _historical(self, request: Request) -> Reply:
        body = load_sample("watttime_historical.json")
        last = floor_to(parse_iso(request.param("end") or ""), 300) - timedelta(seconds=300)
        return Reply(body=shift_times(body, last - parse_iso(body["data"][-1]["point_time"])))


class UkGridFake:
    """The UK Carbon Intensity API: national fw48h / range replayed, regional built from them."""

    forecast_path = r"/(regional/)?intensity/[^/]+/fw48h(/regionid/\d+)?"
    actuals_path = r"/(regional/)?intensity/[^/]+/(?!fw48h)[^/]+(/regionid/\d+)?"
    first_forecast_g_per_kwh = 69.0
    resolution_s = 1800

    def __init__(self, server: ProviderServer, now: datetime, *, zone: str = "GB") -> None:
        self.base_url, self.zone, self.now = server.url, zone, now
        server.route(self.actuals_path, self._range)
        server.route(self.forecast_path, self._forward)

    def forecast_body(self) -> Any:
        start = floor_to(self.now, 1800).strftime("%Y-%m-%dT%H:%MZ")
        return self._forward(Request("GET", f"/intensity/{start}/fw48h", {}, {})).body

    def _forward(self, request: Request) -> Reply:
        body = load_sample("ukgrid_national_fw48h.json")
        start = parse_iso(request.path.split("/intensity/")[1].split("/")[0])
        return self._shape(request, shift_times(body, start - parse_iso(body["data"][0]["from"])))

    def _range(self, request: Request) -> Reply:
        body = load_sample("ukgrid_national_pt24h.json")
        end = floor_to(parse_iso(request.path.split("/intensity/")[1].split("/")[1]), 1800)
        return self._shape(request, shift_times(body, end - parse_iso(body["data"][-1]["to"])))

    @staticmethod
    def _shape(request: Request, national: Any) -> Reply:
        if not request.path.startswith("/regional/"):
            return Reply(body=national)
        region = int(request.path.rsplit("/", 1)[1])
        slots = [
            {
                "from": s["from"],
                "to": s["to"],
                "intensity": {
                    "forecast": s["intensity"]["forecast"],
                    "index": s["intensity"]["index"],
                },
                "generationmix": [{"fuel": "wind", "perc": 50.0}, {"fuel": "gas", "perc": 50.0}],
            }
            for s in national["data"]
        ]
        return Reply(
            body={
                "data": {
                    "regionid": region,
                    "dnoregion": "UK Power Networks",
                    "shortname": "London",
                    "data": slots,
                }
            }
        )


class CarbonAwareSdkFake:
    """The GSF Carbon Aware SDK WebAPI for one ``location`` (400 ValidationProblemDetails else)."""

    forecast_path = r"/emissions/forecasts/current"
    actuals_path = r"/emissions/bylocations"
    resolution_s = 300

    def __init__(self, server: ProviderServer, now: datetime, *, zone: str = "westus") -> None:
        self.base_url, self.zone, self.now = server.url, zone, now
        self.recorded = sorted(
            load_sample("carbonaware_sdk_bylocation.json"), key=lambda d: d["time"]
        )
        self.first_forecast_g_per_kwh = self.recorded[0]["rating"]
        server.route(self.forecast_path, self._guard(self._forecast))
        server.route(self.actuals_path, self._guard(self._bylocations))

    def forecast_body(self) -> Any:
        return self._forecast(Request("GET", self.forecast_path, {}, {})).body

    def _guard(self, reply: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
        def serve(request: Request) -> Reply:
            if request.param("location") != self.zone:
                return Reply(
                    400,
                    {
                        "title": "ArgumentException",
                        "status": 400,
                        "detail": f"Unknown location '{request.param('location')}'",
                    },
                )
            return reply(request)

        return serve

    def _forecast(self, request: Request) -> Reply:
        start = floor_to(self.now, 300)
        data = [
            {
                "location": "CAISO_NORTH",
                "duration": 5,
                "timestamp": (start + timedelta(minutes=5 * i)).isoformat(),
                "value": self.recorded[i % len(self.recorded)]["rating"],
            }
            for i in range(576)
        ]
        return Reply(
            body=[
                {
                    "requestedAt": self.now.isoformat(),
                    "generatedAt": start.isoformat(),
                    "location": self.zone,
                    "dataStartAt": data[0]["timestamp"],
                    "dataEndAt": data[-1]["timestamp"],
                    "windowSize": 5,
                    "optimalDataPoints": [min(data, key=lambda d: d["value"])],
                    "forecastData": data,
                }
            ]
        )

    def _bylocations(self, request: Request) -> Reply:
        last = floor_to(parse_iso(request.param("toTime") or ""), 300) - timedelta(seconds=300)
        body = load_sample("carbonaware_sdk_bylocation.json")
        return Reply(body=shift_times(body, last - parse_iso(body[0]["time"])))


VendorFake = ElectricityMapsFake | WattTimeFake | UkGridFake | CarbonAwareSdkFake

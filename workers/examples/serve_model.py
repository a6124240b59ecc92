"""Serve the seed MLP over HTTP, traced with TorchScript: the example deployment.

``python -m workers.examples.serve_model --port 8000 [--checkpoint ckpt.pt]``

``GET /healthz`` answers ``{"status": "ok"}``; ``POST /predict`` takes
``{"inputs": [[1000 floats], ...]}`` and answers ``{"outputs": [float, ...]}`` (one per row),
or 400 with ``{"error": ...}`` for a malformed body. SIGTERM or SIGINT stops accepting, lets
requests in flight finish, and exits 0. The first stdout line is ``serving on http://HOST:PORT``
(with the real port when ``--port 0``). Each prediction answered counts one request through
``workers.units`` (SCI's functional unit: SCI per 1,000 requests). A repeated body is answered
from a bounded cache (``X-Cache: hit``) and answers are gzipped when ``Accept-Encoding`` asks
(``workers.examples.response_cache``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from workers.endpoint import write_endpoint
from workers.examples.model import INPUT_DIM, build_mlp, resolve_device
from workers.examples.response_cache import ResponseCache, gzip_body
from workers.units import UnitCounter

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_ROWS = 4096


class BadRequest(ValueError):
    """The request body is not a valid prediction request."""


def load_traced_model(
    checkpoint: Path | None, device: torch.device, seed: int = 0
) -> torch.jit.ScriptModule:
    """The seed MLP (weights from ``checkpoint``'s ``model`` entry when given, else
    initialised from ``seed``), traced with ``torch.jit.trace`` in eval mode. Raises
    FileNotFoundError for a missing checkpoint."""
    model = build_mlp(seed)
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state))
    model = model.to(device).eval()
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated from torch 2.10 in favour of torch.export; tracing is still
        # what this example demonstrates, so say it once here rather than on every start.
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        traced: torch.jit.ScriptModule = torch.jit.trace(  # type: ignore[no-untyped-call]
            model, torch.zeros(1, INPUT_DIM, device=device)
        )
    return traced


def parse_inputs(body: bytes) -> list[list[float]]:
    """The ``inputs`` rows of a request body. Raises BadRequest saying what is wrong."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"body is not JSON: {e}") from e
    rows = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not rows:
        raise BadRequest('expected {"inputs": [[1000 numbers], ...]} with at least one row')
    if len(rows) > MAX_ROWS:
        raise BadRequest(f"at most {MAX_ROWS} rows per request, got {len(rows)}")
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != INPUT_DIM:
            raise BadRequest(f"inputs[{index}] must be a list of {INPUT_DIM} numbers")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row):
            raise BadRequest(f"inputs[{index}] holds a value that is not a number")
    return rows


class PredictionServer(ThreadingHTTPServer):
    """A threading HTTP server holding the traced model."""

    # Non-daemon request threads, joined on close: a stop lets requests in flight finish.
    daemon_threads = False
    block_on_close = True

    def __init__(
        self, address: tuple[str, int], model: torch.jit.ScriptModule, device: torch.device
    ) -> None:
        super().__init__(address, PredictionHandler)
        self.model = model
        self.device = device
        self.requests_served = UnitCounter("requests")
        self.cache = ResponseCache()

    def predict(self, rows: list[list[float]]) -> list[float]:
        with torch.inference_mode():
            x = torch.tensor(rows, dtype=torch.float32, device=self.device)
            outputs: list[float] = self.model(x).reshape(-1).tolist()
        return outputs


class PredictionHandler(BaseHTTPRequestHandler):
    server: PredictionServer
    # HTTP/1.0 (the default): one request per connection, so no idle keep-alive connection
    # can hold a shutdown open; a stalled client is cut off after ``timeout`` seconds.
    timeout = 30

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        if self.path != "/predict":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY_BYTES:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "a JSON body up to 64 MiB is needed"})
            self.close_connection = True
            return
        request = self.rfile.read(length)
        answer = self.server.cache.get(request)
        cache = "hit"
        if answer is None:
            try:
                rows = parse_inputs(request)
            except BadRequest as e:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": str(e)})
                return
            answer = json.dumps({"outputs": self.server.predict(rows)}).encode()
            self.server.cache.put(request, answer)
            cache = "miss"
        self._send(HTTPStatus.OK, answer, {"X-Cache": cache})
        self.server.requests_served.add()

    def _reply(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode())

    def _send(self, status: HTTPStatus, body: bytes, headers: dict[str, str] | None = None) -> None:
        body, encoding = gzip_body(body, self.headers.get("Accept-Encoding"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**encoding, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workers.examples.serve_model", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        device = resolve_device(args.device)
        model = load_traced_model(args.checkpoint, device, args.seed)
        server = PredictionServer((args.host, args.port), model, device)
    except (RuntimeError, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it cannot run on the serving thread.
        threading.Thread(target=server.shutdown, name="shutdown").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"serving on http://{host!s}:{port} device={device}", flush=True)
    write_endpoint(f"http://{host!s}:{port}")  # for the runner to report (workers.endpoint)
    with server:
        server.serve_forever(poll_interval=0.2)
    server.requests_served.flush()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

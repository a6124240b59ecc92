"""The seed MLP (TorchScript) as a Ray Serve application: the example Serve deployment.

Submit it as a deployment with ``serve: {import_path: "workers.examples.serve_app:app"}``
(or ``...:build`` with ``config.args`` setting ``checkpoint``, ``seed``, ``cache_entries``,
``device``); replicas and their GPU share come from ``config.deployments``, e.g.
``[{"name": "MlpService", "num_replicas": 2, "ray_actor_options": {"num_gpus": 0.25}}]``.
Under its route prefix it
answers like ``workers.examples.serve_model``:

* ``GET .../healthz``: ``{"status": "ok"}``;
* ``POST .../predict``: ``{"inputs": [[1000 floats], ...]}`` -> ``{"outputs": [...]}``, 400 for a
  malformed body; a repeated body comes from a bounded LRU cache keyed by its SHA-256
  (``X-Cache: hit``); gzipped when ``Accept-Encoding`` asks;
* ``GET .../stats``: this replica's ``requests`` served (SCI's functional unit), cache ``hits``
  and ``misses``;
* ``GET .../-/units``: ``{"units": N, "unit": "requests"}``, the requests answered by every
  replica of the application: what Greenlight's scheduler polls as the job's progress
  (``scheduler.service.serve_accounting``).

A Serve application has no Greenlight runner beside it, so it keeps its own total: each replica
counts in memory and pushes its running total to one ``UnitCounter`` replica (part of the same
application, removed with it) at most every ``PUSH_S`` seconds, and at once before answering
``/-/units``. The counter keeps the highest total seen per replica (pushes may arrive out of
order) and answers their sum, so a replica that dies keeps the requests it had pushed; requests
of its last ``PUSH_S`` seconds are lost with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import Response

from workers.examples.model import resolve_device
from workers.examples.response_cache import DEFAULT_MAX_ENTRIES, ResponseCache, gzip_body
from workers.examples.serve_model import MAX_BODY_BYTES, BadRequest, load_traced_model, parse_inputs

log = logging.getLogger(__name__)
UNITS_ROUTE = "/-/units"
# A replica pushes its running total to the counter at most this often (seconds).
PUSH_S = 1.0


@serve.deployment(name="UnitCounter", num_replicas=1, ray_actor_options={"num_cpus": 0})
class UnitCounter:
    """The application's request total: the highest running total each replica pushed, summed."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}

    def push(self, replica: str, total: int) -> None:
        if total > self.totals.get(replica, -1):
            self.totals[replica] = total

    def total(self) -> int:
        return sum(self.totals.values())


@serve.deployment(name="MlpService", ray_actor_options={"num_cpus": 0.1})
class MlpService:
    """One replica: the traced model, its response cache and its request count."""

    def __init__(
        self,
        checkpoint: str | None = None,
        seed: int = 0,
        cache_entries: int = DEFAULT_MAX_ENTRIES,
        device: str = "auto",
        counter: DeploymentHandle[Any] | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.model = load_traced_model(Path(checkpoint) if checkpoint else None, self.device, seed)
        self.cache = ResponseCache(cache_entries)
        self.requests_served = 0
        self.counter = counter
        self.replica = uuid.uuid4().hex
        self.pushed = 0
        self.pushed_at_s = 0.0
        self.pusher: asyncio.Task[None] | None = None

    async def push_total(self) -> None:
        """Send this replica's running total to the counter (a no-op without one)."""
        if self.counter is None:
            return
        total = self.requests_served
        await self.counter.push.remote(self.replica, total)
        self.pushed, self.pushed_at_s = max(self.pushed, total), time.monotonic()

    async def _push_later(self) -> None:
        """One push ``PUSH_S`` after the last, so a burst costs one call, not one per request."""
        try:
            await asyncio.sleep(max(0.0, self.pushed_at_s + PUSH_S - time.monotonic()))
            await self.push_total()
        except Exception:  # the counter restarting: the next request pushes the total again
            log.warning("pushing the request total failed", exc_info=True)
        finally:
            self.pusher = None

    def _counted(self) -> None:
        self.requests_served += 1
        if self.counter is not None and self.pusher is None:
            self.pusher = asyncio.get_running_loop().create_task(self._push_later())

    async def units(self) -> dict[str, Any]:
        """Every replica's requests answered, as Greenlight's progress report reads it."""
        if self.counter is None:
            return {"units": self.requests_served, "unit": "requests"}
        await self.push_total()
        total: int = await self.counter.total.remote()
        return {"units": total, "unit": "requests"}

    def predict(self, rows: list[list[float]]) -> bytes:
        import torch

        with torch.inference_mode():
            x = torch.tensor(rows, dtype=torch.float32, device=self.device)
            outputs: list[float] = self.model(x).reshape(-1).tolist()
        return json.dumps({"outputs": outputs}).encode()

    async def __call__(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        if request.method == "GET" and path.endswith("/healthz"):
            return self._json(request, 200, {"status": "ok"})
        if request.method == "GET" and path.endswith("/stats"):
            stats = {
                "requests": self.requests_served,
                "hits": self.cache.hits,
                "misses": self.cache.misses,
            }
            return self._json(request, 200, stats)
        if request.method == "GET" and path.endswith(UNITS_ROUTE):
            return self._json(request, 200, await self.units())
        if request.method != "POST" or not path.endswith("/predict"):
            return self._json(request, 404, {"error": f"no route {request.method} {path}"})
        body = await request.body()
        if not body or len(body) > MAX_BODY_BYTES:
            return self._json(request, 400, {"error": "a JSON body up to 64 MiB is needed"})
        answer = self.cache.get(body)
        cache = "hit"
        if answer is None:
            try:
                rows = parse_inputs(body)
            except BadRequest as e:
                return self._json(request, 400, {"error": str(e)})
            answer = self.predict(rows)
            self.cache.put(body, answer)
            cache = "miss"
        self._counted()
        return self._send(request, 200, answer, {"X-Cache": cache})

    def _json(self, request: Request, status: int, payload: dict[str, Any]) -> Response:
        return self._send(request, status, json.dumps(payload).encode())

    @staticmethod
    def _send(
        request: Request, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> Response:
        sent, encoding = gzip_body(body, request.headers.get("accept-encoding"))
        return Response(
            sent,
            status_code=status,
            media_type="application/json",
            headers={**encoding, **(headers or {})},
        )


def build(args: dict[str, Any]) -> Application:
    """Serve's application builder: ``config.args`` become the replicas' arguments."""
    counter = UnitCounter.bind()  # type: ignore[attr-defined]
    application: Application = MlpService.bind(counter=counter, **args)  # type: ignore[attr-defined]
    return application


app: Application = build({})

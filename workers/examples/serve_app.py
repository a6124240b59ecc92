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
  and ``misses``.

Requests are counted per replica, in memory: a Serve application has no Greenlight runner
beside it to report them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application
from starlette.requests import Request
from starlette.responses import Response

from workers.examples.model import resolve_device
from workers.examples.response_cache import DEFAULT_MAX_ENTRIES, ResponseCache, gzip_body
from workers.examples.serve_model import MAX_BODY_BYTES, BadRequest, load_traced_model, parse_inputs


@serve.deployment(name="MlpService", ray_actor_options={"num_cpus": 0.1})
class MlpService:
    """One replica: the traced model, its response cache and its request count."""

    def __init__(
        self,
        checkpoint: str | None = None,
        seed: int = 0,
        cache_entries: int = DEFAULT_MAX_ENTRIES,
        device: str = "auto",
    ) -> None:
        self.device = resolve_device(device)
        self.model = load_traced_model(Path(checkpoint) if checkpoint else None, self.device, seed)
        self.cache = ResponseCache(cache_entries)
        self.requests_served = 0

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
        self.requests_served += 1
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
    application: Application = MlpService.bind(**args)  # type: ignore[attr-defined]
    return application


app: Application = MlpService.bind()  # type: ignore[attr-defined]

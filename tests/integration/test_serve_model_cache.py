"""The plain HTTP example service (``workers.examples.serve_model``) in this process on a free
port: a repeated body is answered from the cache, gzip when the client asks for it, and every
answer counts one request."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator

import pytest
import requests
import torch

from workers.examples.model import INPUT_DIM
from workers.examples.serve_model import PredictionServer, load_traced_model


@pytest.fixture
def server() -> Iterator[PredictionServer]:
    device = torch.device("cpu")
    srv = PredictionServer(("127.0.0.1", 0), load_traced_model(None, device), device)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        thread.join()
        srv.server_close()


def test_cache_and_gzip(server: PredictionServer) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/predict"
    rows = [[0.01 * ((i + r) % 5) for i in range(INPUT_DIM)] for r in range(32)]
    body = json.dumps({"inputs": rows})
    first = requests.post(url, data=body, headers={"Accept-Encoding": "identity"}, timeout=30)
    assert first.status_code == 200
    assert first.headers["X-Cache"] == "miss"
    assert "Content-Encoding" not in first.headers
    second = requests.post(url, data=body, headers={"Accept-Encoding": "gzip"}, stream=True)
    assert second.headers["X-Cache"] == "hit"
    assert second.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(second.raw.read(decode_content=False))) == first.json()
    other = json.dumps({"inputs": rows[:1]})
    assert requests.post(url, data=other, timeout=30).headers["X-Cache"] == "miss"
    assert (server.cache.hits, server.cache.misses) == (1, 2)
    assert len(server.cache) == 2
    bad = requests.post(url, data="{}", timeout=30)
    assert bad.status_code == 400
    assert server.requests_served.total == 3

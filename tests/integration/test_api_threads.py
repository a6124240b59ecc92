"""``api_threads``: how many threads run the API's synchronous routes, set when the app starts
on its server's event loop, and what a sync route really gets."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import build_service
from scheduler.config import load_settings


def test_the_route_thread_pool_has_the_configured_size(sqlite_url: str) -> None:
    settings = load_settings(database_url=sqlite_url, api_threads=3)
    service = build_service(settings)
    app = create_app(service, threads=settings.api_threads)
    busy = 0
    most = 0
    lock = threading.Lock()

    @app.get("/_slow")
    def slow() -> dict[str, int]:  # a sync route: it runs in the pool
        nonlocal busy, most
        with lock:
            busy += 1
            most = max(most, busy)
        time.sleep(0.2)
        with lock:
            busy -= 1
        return {}

    with TestClient(app) as http:
        assert http.portal is not None
        limiter = http.portal.call(anyio.to_thread.current_default_thread_limiter)
        assert limiter.total_tokens == 3
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: http.get("/_slow").status_code, range(8)))
    assert codes == [200] * 8
    assert most == 3  # eight at once, never more than three in the pool

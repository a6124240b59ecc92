"""``api_threads``: how many threads run the API's synchronous routes, set when the app starts
on its server's event loop, and what a sync route really gets; ``api_slow_threads``: the lane
of the routes that take seconds (``scheduler.api.slow_lane``)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import Role


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


def test_slow_routes_queue_in_their_own_lane_not_in_front_of_the_rest(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = build_service(load_settings(database_url=sqlite_url))
    secret, _ = service.create_token(tenant="ops", role=Role.ADMIN)
    headers = {"Authorization": f"Bearer {secret}"}
    real = service.savings_report

    def slow_report(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)  # a report over a long history
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "savings_report", slow_report)
    app = create_app(service, threads=1, slow_threads=1)
    with TestClient(app) as http, ThreadPoolExecutor(3) as pool:
        started = time.monotonic()
        reports = [
            pool.submit(lambda: http.get("/v1/reports/savings", headers=headers)) for _ in range(2)
        ]
        time.sleep(0.2)  # both reports in: one running, one waiting in the slow lane
        listing = http.get("/v1/jobs", headers=headers)
        listed_s = time.monotonic() - started
        assert listing.status_code == 200, listing.text
        assert [r.result().status_code for r in reports] == [200, 200]
        reported_s = time.monotonic() - started
    assert listed_s < 0.9  # the one ordinary thread was free: no report in front of it
    assert reported_s >= 2.0  # the slow lane's one thread ran the reports one after the other

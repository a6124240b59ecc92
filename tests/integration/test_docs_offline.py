"""``/docs`` and ``/redoc`` work offline: every asset they load is served by the service itself,
and Swagger UI really renders the API in a headless Chromium that can resolve no other host."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import build_service, start_api_thread
from scheduler.config import load_settings
from scheduler.service import GreenlightService
from tests.fakes.clock import FakeClock

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def service(sqlite_url: str) -> GreenlightService:
    return build_service(
        load_settings(database_url=sqlite_url), clock=FakeClock(datetime(2023, 3, 1, tzinfo=UTC))
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_the_service(service: GreenlightService, page: str) -> None:
    http = TestClient(create_app(service))
    html = http.get(page)
    assert html.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert assets, html.text
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        assert http.get(asset).status_code == 200, asset
    assert "/openapi.json" in html.text


@pytest.fixture
def live_url(service: GreenlightService) -> Iterator[str]:
    server = start_api_thread(service, "127.0.0.1", 0)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_swagger_ui_renders_offline(live_url: str) -> None:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="gl-chromium-") as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--disable-background-networking",
                "--disable-component-update",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--dump-dom",
                f"{live_url}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    # Swagger UI drew an operation block per route, from the service's own bundle.
    assert 'class="swagger-ui' in dom
    assert re.search(r'data-path="/v1/jobs"', dom), dom[:3000]
    assert "Greenlight" in dom

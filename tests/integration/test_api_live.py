"""The API served by a real uvicorn on loopback, called over real HTTP with ``requests``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from scheduler.bootstrap import build_service, start_api_thread
from scheduler.config import load_settings
from scheduler.domain import Role
from scheduler.logs import JsonFormatter
from scheduler.service import GreenlightService
from tests.fakes.clock import FakeClock

TIMEOUT_S = (3.0, 30.0)


@pytest.fixture
def service(sqlite_url: str) -> GreenlightService:
    return build_service(
        load_settings(database_url=sqlite_url), clock=FakeClock(datetime(2023, 3, 1, 6, tzinfo=UTC))
    )


@pytest.fixture
def base_url(service: GreenlightService) -> Iterator[str]:
    server = start_api_thread(service, "127.0.0.1", 0)
    try:
        yield server.url
    finally:
        server.stop()


def test_submit_read_and_cancel_over_http(service: GreenlightService, base_url: str) -> None:
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {secret}"
    created = session.post(
        f"{base_url}/v1/jobs",
        timeout=TIMEOUT_S,
        json={
            "name": "train",
            "entrypoint": "python train.py",
            "home_region": "us-west",
            "expected_duration_s": 1800,
            "deadline": "2023-03-01T18:00:00+00:00",
        },
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["deadline"] == "2023-03-01T18:00:00Z"
    listed = session.get(f"{base_url}/v1/jobs", timeout=TIMEOUT_S).json()
    assert [j["id"] for j in listed["data"]] == [job["id"]]
    cancelled = session.post(f"{base_url}/v1/jobs/{job['id']}/cancel", timeout=TIMEOUT_S)
    assert cancelled.json()["state"] == "cancelled"
    again = session.post(f"{base_url}/v1/jobs/{job['id']}/cancel", timeout=TIMEOUT_S)
    assert again.status_code == 409
    session.close()


def test_errors_over_http_keep_their_status_headers_and_json(base_url: str) -> None:
    anonymous = requests.get(f"{base_url}/v1/jobs", timeout=TIMEOUT_S)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.headers["content-type"] == "application/json"
    assert "bearer token" in anonymous.json()["detail"]
    health = requests.get(f"{base_url}/healthz", timeout=TIMEOUT_S)
    assert health.json()["database"] == "ok"


def test_each_request_is_one_structured_log_record(
    service: GreenlightService,
    base_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret, _ = service.create_token(tenant="acme", role=Role.USER)
    with caplog.at_level(logging.INFO, logger="scheduler.api.access"):
        requests.get(
            f"{base_url}/v1/jobs/j-42",
            timeout=TIMEOUT_S,
            headers={"Authorization": f"Bearer {secret}"},
        )
    records = [r for r in caplog.records if r.name == "scheduler.api.access"]
    assert len(records) == 1
    entry = json.loads(JsonFormatter().format(records[0]))
    assert entry["method"] == "GET"
    assert entry["path"] == "/v1/jobs/j-42"
    assert entry["route"] == "/v1/jobs/{job_id}"
    assert entry["status"] == 404
    assert entry["duration_ms"] >= 0
    assert entry["client"].startswith("127.0.0.1:")

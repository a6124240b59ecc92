"""Prometheus exposition: counters typed as counters, per-region forecast age."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import Role
from tests.fakes.clock import FakeClock


def test_metrics_type_counters_and_report_forecast_age(sqlite_url: str) -> None:
    clock = FakeClock(datetime(2023, 3, 1, 6, tzinfo=UTC))
    service = build_service(load_settings(database_url=sqlite_url), clock=clock)
    admin, _ = service.create_token(tenant="ops", role=Role.ADMIN)
    user, _ = service.create_token(tenant="acme", role=Role.USER)
    http = TestClient(create_app(service))
    assert set(service.pull_forecasts().values()) == {"ok"}
    created = http.post(
        "/v1/jobs",
        headers={"Authorization": f"Bearer {user}"},
        json={
            "name": "t",
            "entrypoint": "python t.py",
            "home_region": "eu-central",
            "expected_duration_s": 3600,
            "max_delay_s": 6 * 3600,
        },
    )
    assert created.status_code == 201, created.text
    clock.advance(600)
    text = http.get("/metrics", headers={"Authorization": f"Bearer {admin}"}).text
    assert "# TYPE greenlight_jobs_submitted_total counter" in text
    assert "greenlight_jobs_submitted_total 1.0" in text
    ages = dict(
        re.findall(
            r'greenlight_forecast_age_seconds\{region="([^"]+)",zone="[^"]+"\} ([0-9.e+]+)', text
        )
    )
    assert set(ages) == {"eu-central", "eu-south", "us-west"}
    assert {float(age) for age in ages.values()} == {600.0}

"""Prometheus exposition: counters typed as counters, per-region forecast age."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import Role
from tests.fakes.clock import FakeClock

REPO = Path(__file__).resolve().parents[2]


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


def test_cycle_durations_savings_and_every_grafana_metric_exist(sqlite_url: str) -> None:
    clock = FakeClock(datetime(2023, 3, 1, 6, tzinfo=UTC))
    service = build_service(load_settings(database_url=sqlite_url), clock=clock)
    admin, _ = service.create_token(tenant="ops", role=Role.ADMIN)
    http = TestClient(create_app(service))
    service.pull_forecasts()
    service.plan_cycle()
    service.plan_cycle()
    text = http.get("/metrics", headers={"Authorization": f"Bearer {admin}"}).text
    assert "# TYPE greenlight_cycle_duration_seconds histogram" in text
    assert 'greenlight_cycle_duration_seconds_count{cycle="plan"} 2.0' in text
    assert 'greenlight_cycle_duration_seconds_count{cycle="refresh"} 1.0' in text
    # No job has run: nothing saved, nothing measured, and both say so rather than vanish.
    assert "greenlight_emissions_saved_grams 0.0" in text
    assert "greenlight_energy_measured_kwh 0.0" in text

    # Every series the shipped Grafana dashboard queries is exposed now, or is a service
    # counter that appears on its first count (its key is in the code that counts it).
    dashboard = json.loads((REPO / "configs/grafana/greenlight-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = {
        re.sub(r"_(bucket|count|sum)$", "", n)
        for e in exprs
        for n in re.findall(r"greenlight_[a-z_]+", e)
    }
    assert names
    source = "\n".join(p.read_text() for p in (REPO / "scheduler").rglob("*.py"))
    for name in sorted(names):
        key = name.removeprefix("greenlight_")
        assert name in text or f'"{key}"' in source, f"{name} is neither exposed nor counted"

"""A provider dies mid-run: planning carries on down the fallback ladder and the job still
starts by its latest safe start (issue 3, item 5), on a real provider server and a real Ray."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.bootstrap import RayEndpoint, build_service
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead
from scheduler.domain import JobKind, JobSpec, JobState, Principal, Resources, Role
from tests.fakes.clock import FakeClock
from tests.fakes.provider_server import ProviderServer, Reply, UkGridFake

pytestmark = pytest.mark.ray
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
ADMIN = Principal(tenant="ops", role=Role.ADMIN, token_id="t")


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "greenlight.toml"
    path.write_text(f"""
forecast_max_age_s = 10800
[[regions]]
name = "uk"
grid_zone = "GB"
provider = "ukgrid"
base_url = "{url}"
gpus = 4
pue = 1.2
refresh_interval_s = 900
""")
    return path


def _valley_at(reply: Reply, hours: float) -> Reply:
    """The recorded forecast reshaped: dirty now, clean from ``hours`` ahead, so the plan waits."""
    data = reply.body["data"]
    start = datetime.fromisoformat(data[0]["from"].replace("Z", "+00:00"))
    for item in data:
        at = datetime.fromisoformat(item["from"].replace("Z", "+00:00"))
        item["intensity"]["forecast"] = 300 if at < start + timedelta(hours=hours) else 60
    return Reply(status=reply.status, body=reply.body)


def test_planning_survives_a_provider_outage_and_meets_the_deadline(
    tmp_path: Path,
    sqlite_url: str,
    ray_cluster: LocalRayHead,
) -> None:
    clock = FakeClock(NOW)
    server = ProviderServer().start()
    fake = UkGridFake(server, NOW)
    server.route(fake.forecast_path, lambda request: _valley_at(fake._forward(request), hours=5))
    settings = load_settings(_config(tmp_path, server.url), database_url=sqlite_url)
    service = build_service(settings, clock=clock, ray=RayEndpoint(ray_cluster.dashboard_url))
    assert service.refresh_forecasts() == {"uk": "ok"}

    spec = JobSpec(
        tenant="acme",
        name="train",
        kind=JobKind.TRAINING,
        home_region="uk",
        entrypoint=f"{sys.executable} -c \"print('trained')\"",
        # CPU only: the local Ray head has no GPU, and capacity is what Ray has.
        resources=Resources(gpus=0, cpus=1),
        expected_duration_s=3600,
        deadline=NOW + timedelta(hours=8),
    )
    job = service.submit(spec, Principal(tenant="acme", role=Role.USER, token_id="u"))
    service.plan_cycle()  # a submit never plans: the cycle it wakes does
    job = service.ctx.store.get_job(job.id)
    assert job.state is JobState.PLANNED
    assert job.plan is not None
    assert job.plan.start >= NOW + timedelta(hours=4)  # it waits for the clean hours
    latest_start = spec.deadline - timedelta(hours=1)  # type: ignore[operator]

    server.stop()  # the provider is gone from here on
    dispatched_at = None
    while clock.now() <= latest_start + timedelta(minutes=5):
        clock.advance(900)
        outcome = service.refresh_forecasts()
        assert outcome["uk"] != "ok"
        service.plan_cycle()
        current = service.get_job(job.id, ADMIN)
        if current.plan is not None and current.state is JobState.PLANNED:
            assert current.plan.end <= spec.deadline  # type: ignore[operator]
        if service.dispatch_due():
            dispatched_at = clock.now()
            break
    assert dispatched_at is not None
    assert dispatched_at <= latest_start + timedelta(minutes=15)

    events = service.events(job.id, ADMIN)
    fallbacks = [e.reason for e in events if e.kind == "fallback"]
    # The plan moved down the ladder, and said so, rather than failing.
    assert any("old forecast" in r or "actuals" in r for r in fallbacks), fallbacks
    status = next(s for s in service.regions() if s.region.name == "uk")
    assert status.last_error
    assert service.ctx.counters["forecast_refresh_errors_total"] > 0

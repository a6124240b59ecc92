"""The carbon-signal fallback ladder, on a real SQLite store and the replay provider:
fresh forecast -> old forecast (noted) -> recent actuals as a daily profile -> unpriced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import JobKind, JobSpec, JobState, Principal, Resources, Role
from scheduler.service.snapshots import region_signal
from tests.fakes.clock import FakeClock

T0 = datetime(2026, 3, 2, 6, tzinfo=UTC)
USER = Principal(tenant="acme", role=Role.USER, token_id="u")
ADMIN = Principal(tenant="ops", role=Role.ADMIN, token_id="a")


def test_each_rung_of_the_ladder_is_used_in_turn_and_said(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    service = build_service(load_settings(database_url=sqlite_url), clock=clock)
    ctx = service.ctx
    assert region_signal(ctx, "eu-south", T0) is None  # nothing fetched yet: unpriced
    service.refresh_forecasts()

    fresh = region_signal(ctx, "eu-south", T0 + timedelta(minutes=30))
    assert fresh is not None
    assert fresh.fallback is None
    assert fresh.note is None

    old = region_signal(ctx, "eu-south", T0 + timedelta(hours=3))
    assert old is not None
    assert old.fallback == "old-forecast"
    assert old.note is not None
    assert "3.0 h old forecast" in old.note

    late = T0 + timedelta(hours=7)  # beyond forecast_max_age_s (6 h)
    profile = region_signal(ctx, "eu-south", late)
    assert profile is not None
    assert profile.fallback == "actuals-profile"
    recent = ctx.store.actuals("ES", late - timedelta(hours=24), late)
    assert recent is not None
    # The profile repeats the last 24 h of actuals one day later, point for point.
    shifted = {p.valid_at + timedelta(days=1): p.g_per_kwh for p in recent.points}
    for point in profile.series.points[: len(recent.points)]:
        assert shifted[point.valid_at] == point.g_per_kwh


def test_a_job_planned_on_the_profile_gets_a_fallback_event(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    service = build_service(load_settings(database_url=sqlite_url), clock=clock)
    service.refresh_forecasts()
    clock.advance(7 * 3600)  # every forecast is now too old; no refresh (provider "down")
    spec = JobSpec(
        tenant="acme",
        name="j",
        kind=JobKind.TRAINING,
        home_region="eu-south",
        entrypoint="true",
        resources=Resources(gpus=1),
        expected_duration_s=3600,
        deadline=clock.now() + timedelta(hours=12),
    )
    job = service.submit(spec, USER)
    service.plan_cycle()  # a submit never plans: the cycle it wakes does
    job = service.ctx.store.get_job(job.id)
    assert job.state is JobState.PLANNED
    assert job.plan is not None
    assert job.plan.note is not None
    assert "actuals" in job.plan.note
    kinds = [e.kind for e in service.events(job.id, ADMIN)]
    assert "fallback" in kinds
    assert service.ctx.counters["plans_on_fallback_total"] >= 1


def test_with_no_carbon_data_at_all_a_job_runs_now_at_home(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    service = build_service(load_settings(database_url=sqlite_url), clock=clock)
    spec = JobSpec(
        tenant="acme",
        name="j",
        kind=JobKind.TRAINING,
        home_region="us-west",
        entrypoint="true",
        resources=Resources(gpus=1),
        expected_duration_s=3600,
        deadline=T0 + timedelta(hours=12),
    )
    job = service.submit(spec, USER)
    service.plan_cycle()  # a submit never plans: the cycle it wakes does
    job = service.ctx.store.get_job(job.id)
    assert job.plan is not None
    assert job.plan.region == "us-west"
    assert job.plan.start <= T0 + timedelta(minutes=5)

"""Failure isolation in the plan cycle, on a real SQLite store with the shipped replay traces:
one poisoned job is quarantined with an event and a metric, and every other job is planned."""

from __future__ import annotations

import pytest

from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import JobEvent, JobState, Resources
from scheduler.domain.errors import UnplannableJob
from scheduler.planning.finite import check_decision, check_jobs, job_problem
from scheduler.planning.snapshot import Decision, PlanningJob
from scheduler.service import GreenlightService
from tests.fakes.clock import FakeClock
from tests.fakes.store import make_job, make_plan, make_spec

GOOD = 1000


@pytest.fixture
def service(sqlite_url: str) -> GreenlightService:
    settings = load_settings(database_url=sqlite_url)
    svc = build_service(settings, clock=FakeClock())
    svc.refresh_forecasts()
    return svc


def _add(service: GreenlightService, job_id: str, **spec: object) -> None:
    now = service.ctx.clock.now()
    job = make_job(job_id, created_at=now, spec=make_spec(**spec))
    service.ctx.store.add_job(
        job,
        JobEvent(
            job_id=job_id,
            at=now,
            kind="state",
            actor="test",
            reason="submitted",
            to_state=JobState.PENDING,
        ),
    )


def test_poisoned_jobs_are_quarantined_and_the_1000_others_planned(
    service: GreenlightService,
) -> None:
    for i in range(GOOD):
        _add(service, f"good-{i:04d}", max_delay_s=6 * 3600.0)
    # What the API used to accept: 1e308 CPUs (infinite power, so infinite emissions), a delay
    # no datetime can hold, a priority numpy cannot hold.
    _add(service, "poison-power", resources=Resources(cpus=1e308), expected_power_w=float("inf"))
    _add(service, "poison-delay", max_delay_s=9e15)
    _add(service, "poison-priority", priority=2**62)

    service.plan_cycle()

    store = service.ctx.store
    planned, total = store.list_jobs(states=[JobState.PLANNED], limit=2 * GOOD)
    assert total == GOOD
    assert {j.id for j in planned} == {f"good-{i:04d}" for i in range(GOOD)}
    for poisoned in ("poison-power", "poison-delay", "poison-priority"):
        assert store.get_job(poisoned).state is JobState.PENDING
        events = [e for e in store.events(poisoned) if e.kind == "quarantine"]
        assert len(events) == 1, poisoned
        assert "quarantined by the plan cycle" in events[0].reason
    assert service.ctx.counters["jobs_quarantined_total"] == 3
    assert service.metrics_snapshot()["greenlight_jobs_quarantined_total"] == 3.0

    # Later cycles go on: no exception, no second quarantine, the good plans stay.
    service.ctx.clock.advance(60)  # type: ignore[attr-defined]
    service.plan_cycle()
    assert service.ctx.counters["jobs_quarantined_total"] == 3
    assert store.list_jobs(states=[JobState.PLANNED], limit=1)[1] == GOOD
    assert "poison-power" not in {j.id for j in store.planning_jobs()}


def test_a_retrying_job_due_now_is_planned_again_at_once(service: GreenlightService) -> None:
    """A retry is saved as planned on the next cycle, even when its run-now plan moved less
    than a slot (it used to wait a whole step in retrying)."""
    _add(service, "retry", max_delay_s=0.0, expected_duration_s=600.0)
    service.plan_cycle()
    store = service.ctx.store
    job = store.get_job("retry")
    assert job.state is JobState.PLANNED
    claimed = store.claim_due(service.ctx.clock.now(), 10)
    assert [j.id for j in claimed] == ["retry"]
    store.transition(
        "retry",
        JobState.RETRYING,
        JobEvent(
            job_id="retry", at=service.ctx.clock.now(), kind="state", actor="test", reason="x"
        ),
    )
    service.ctx.clock.advance(30)  # type: ignore[attr-defined]
    service.ctx.wake_dispatcher.clear()
    service.plan_cycle()
    assert store.get_job("retry").state is JobState.PLANNED
    assert service.ctx.wake_dispatcher.is_set()  # due now: the dispatcher is woken


def test_the_core_names_a_non_finite_job_or_plan() -> None:
    now = make_plan(make_job("x").created_at).planned_at
    base = PlanningJob(
        id="ok",
        kind=make_spec().kind,
        gpus=1,
        power_w=300.0,
        duration_s=600.0,
        submitted_at=now,
        earliest_start=now,
        deadline=None,
        home_region="r",
        allowed_regions=(),
    )
    assert job_problem(base) is None
    bad = [
        PlanningJob(**{**_fields(base), "id": "inf", "power_w": float("inf")}),
        PlanningJob(**{**_fields(base), "id": "nan", "duration_s": float("nan")}),
        PlanningJob(**{**_fields(base), "id": "prio", "priority": 2**63}),
    ]
    for job in bad:
        with pytest.raises(UnplannableJob) as caught:
            check_jobs([base, job])
        assert caught.value.job_id == job.id
    plan = make_plan(now, forecast_emissions_g=float("inf"))
    with pytest.raises(UnplannableJob, match="forecast_emissions_g"):
        check_decision(Decision(plans={"ok": make_plan(now), "boom": plan}))


def _fields(job: PlanningJob) -> dict[str, object]:
    return {name: getattr(job, name) for name in PlanningJob.__dataclass_fields__}

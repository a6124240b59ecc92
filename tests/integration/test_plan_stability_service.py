"""Plan stability through the service, on a real SQLite store with the shipped replay traces:
later cycles over an unchanged queue write no plan and no event, and a late job's warning is
written once per reason, not every cycle."""

from __future__ import annotations

from datetime import timedelta

import pytest

from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import JobEvent, JobState
from scheduler.service import GreenlightService
from tests.fakes.clock import FakeClock
from tests.fakes.store import make_job, make_spec


@pytest.fixture
def service(sqlite_url: str) -> GreenlightService:
    settings = load_settings(database_url=sqlite_url)
    svc = build_service(settings, clock=FakeClock())
    svc.refresh_forecasts()
    return svc


def _add(service: GreenlightService, job_id: str, age_s: float = 0.0, **spec: object) -> None:
    at = service.ctx.clock.now() - timedelta(seconds=age_s)
    job = make_job(job_id, created_at=at, spec=make_spec(**spec))
    service.ctx.store.add_job(
        job,
        JobEvent(
            job_id=job_id, at=at, kind="state", actor="test", reason="s", to_state=JobState.PENDING
        ),
    )


def _kinds(service: GreenlightService, job_id: str, kind: str) -> int:
    return sum(1 for e in service.ctx.store.events(job_id) if e.kind == kind)


def test_later_cycles_keep_plans_and_warn_once(service: GreenlightService) -> None:
    for i in range(50):
        _add(service, f"job-{i:02d}", max_delay_s=12 * 3600.0)
    # Submitted a day ago with an hour of slack: its deadline is past, it is late every cycle.
    _add(service, "late", age_s=86400.0, max_delay_s=3600.0)
    service.plan_cycle()
    plans = {j.id: j.plan for j in service.ctx.store.planning_jobs()}
    assert _kinds(service, "late", "warning") == 1
    changed = service.ctx.counters["plans_changed_total"]

    for _ in range(3):
        service.ctx.clock.advance(60)  # type: ignore[attr-defined]
        decision = service.plan_cycle()
        assert "late" in decision.late
    assert _kinds(service, "late", "warning") == 1  # once for the reason, not per cycle
    assert service.ctx.counters["jobs_late_total"] == 1
    after = {j.id: j.plan for j in service.ctx.store.planning_jobs()}
    for i in range(50):
        job_id = f"job-{i:02d}"
        assert after[job_id] == plans[job_id], job_id
        assert _kinds(service, job_id, "plan") == 1
    # Only the late job (planned as early as possible, so moving with the clock) may be written.
    assert service.ctx.counters["plans_changed_total"] - changed <= 3

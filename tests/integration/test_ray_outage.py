"""Ray failures against a real local Ray head (issue 9, item 9).

* A region whose Ray is unreachable (a closed port) is marked down once (metric, one log line),
  a dispatch to it is undone without using a retry, its job waits; when Ray answers again the
  region comes back and the job runs with submission id ``<id>-1``.
* An attempt the cluster does not know, but whose runner reported energy lately, is not
  submitted again; once it is silent past the heartbeat it retries as a new attempt.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.dispatch.ray_jobs import RayDispatcher
from scheduler.domain import EnergyReport, JobEvent, JobState, MeterMethod, Policy
from scheduler.domain.runs import RunStatus
from scheduler.service import GreenlightService
from tests.fakes.clock import FakeClock
from tests.fakes.store import make_job, make_spec

pytestmark = pytest.mark.ray


def _service(sqlite_url: str, address: str, clock: FakeClock) -> GreenlightService:
    service = build_service(
        load_settings(database_url=sqlite_url),
        clock=clock,
        dispatcher=RayDispatcher(address, connect_timeout_s=2.0),
    )
    # The run itself is what matters here, not the worker wrapper (it needs the API).
    import dataclasses

    service.ctx.config = dataclasses.replace(service.ctx.config, worker_command="env")
    service.refresh_forecasts()
    return service


def _add_due_job(service: GreenlightService, job_id: str) -> None:
    now = service.ctx.clock.now()
    job = make_job(
        job_id,
        created_at=now,
        spec=make_spec(
            policy=Policy.NOW, max_delay_s=0.0, entrypoint="true", expected_duration_s=60.0
        ),
    )
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


def _drive(service: GreenlightService, job_id: str, want: JobState, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        service.plan_cycle()
        service.dispatch_due()
        service.reconcile()
        if service.ctx.store.get_job(job_id).state is want:
            return
        time.sleep(0.3)
    raise AssertionError(f"{job_id} is {service.ctx.store.get_job(job_id).state}, not {want}")


def test_unreachable_ray_marks_the_region_down_and_uses_no_retry(
    sqlite_url: str,
    ray_cluster: LocalRayHead,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(datetime.now(UTC))
    service = _service(sqlite_url, f"http://127.0.0.1:{free_port()}", clock)
    ctx, store = service.ctx, service.ctx.store
    _add_due_job(service, "outage")
    service.plan_cycle()

    with caplog.at_level(logging.WARNING, logger="scheduler.service.isolation"):
        assert service.dispatch_due() == []
        for _ in range(3):  # noticed once, not per pass
            service.reconcile()
            service.plan_cycle()
            service.dispatch_due()
    job = store.get_job("outage")
    assert job.state is JobState.RETRYING
    assert job.attempt == 0  # the failed dispatch used no retry (max_retries is 0)
    assert job.submission_id is None
    assert any("not counted as a retry" in e.reason for e in store.events("outage"))
    assert set(ctx.regions_down) == set(ctx.regions)  # the probe found every region down
    assert ctx.counters["ray_region_down_total"] == len(ctx.regions)
    down_lines = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(down_lines) == len(ctx.regions)
    metrics = service.metrics_snapshot()
    assert metrics['greenlight_region_down{region="eu-central"}'] == 1.0

    # Ray answers again: the next reconcile notices, and the job runs as attempt 1.
    ctx.dispatcher = RayDispatcher(ray_cluster.dashboard_url)
    service.reconcile()
    assert ctx.regions_down == {}
    assert ctx.counters["ray_region_up_total"] == len(ctx.regions)
    _drive(service, "outage", JobState.SUCCEEDED, timeout_s=90)
    job = store.get_job("outage")
    assert job.attempt == 1
    assert job.submission_id == "outage-1"
    assert sum(1 for e in store.events("outage") if e.kind == "dispatch") == 1


def test_an_unknown_attempt_that_still_reports_is_not_resubmitted(
    sqlite_url: str,
    ray_cluster: LocalRayHead,
) -> None:
    clock = FakeClock(datetime.now(UTC))
    service = _service(sqlite_url, ray_cluster.dashboard_url, clock)
    ctx, store = service.ctx, service.ctx.store
    job_id = f"lost-{free_port()}"  # unique on the shared head
    _add_due_job(service, job_id)
    service.plan_cycle()
    # Attempt 1 reached a head that has since restarted and forgotten it: dispatched and
    # recorded, yet unknown to the cluster.
    [job] = store.claim_due(clock.now(), 10)
    assert store.take_submit(job_id, 1, clock.now(), ctx.config.submit_lease_s)
    assert store.record_dispatch(
        job_id,
        1,
        JobEvent(job_id=job_id, at=clock.now(), kind="dispatch", actor="test", reason="x"),
    )
    now = clock.advance(40)
    store.add_energy_reports(
        [
            EnergyReport(
                job_id=job_id,
                attempt=1,
                node="n",
                device="estimate:cpu",
                interval_start=now - timedelta(seconds=30),
                interval_end=now - timedelta(seconds=5),
                energy_j=300.0,
                method=MeterMethod.ESTIMATE,
            )
        ]
    )
    clock.advance(60)  # the runner reported 65 s ago: within the heartbeat (120 s)

    service.reconcile()
    job = store.get_job(job_id)
    assert job.state is JobState.DISPATCHED
    assert job.attempt == 1
    assert ctx.counters["attempts_unknown_alive_total"] == 1
    assert (
        ctx.dispatcher.status(ctx.region(job.region or ""), f"{job_id}-1").status
        is RunStatus.UNKNOWN
    )  # not resubmitted

    clock.advance(ctx.config.heartbeat_s)  # silent since: the old run is dead
    service.reconcile()
    assert store.get_job(job_id).state is JobState.RETRYING
    assert ctx.counters["attempts_lost_total"] == 1
    _drive(service, job_id, JobState.SUCCEEDED, timeout_s=90)
    job = store.get_job(job_id)
    assert job.attempt == 2
    assert job.submission_id == f"{job_id}-2"
    region = ctx.region(job.region or "")
    assert ctx.dispatcher.status(region, f"{job_id}-1").status is RunStatus.UNKNOWN
    reports = store.energy_reports([job_id])
    assert {r.attempt for r in reports} == {1}  # attempt 1's energy stays attempt 1's

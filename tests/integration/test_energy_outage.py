"""No energy report is lost to an API outage (issue 9, item 8): a real job on a real local Ray
head whose runner cannot reach the API at all (a closed port: no token exchange, no POST) still
has its energy stored, read back by reconcile from the ``GREENLIGHT_ENERGY`` lines in its log,
and reading them again counts nothing twice."""

from __future__ import annotations

import dataclasses
import time

import pytest

from scheduler.bootstrap import RayEndpoint, build_service
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import JobEvent, JobState, Policy
from scheduler.service.reconciling import recover_energy
from tests.fakes.store import make_job, make_spec

pytestmark = pytest.mark.ray


def test_energy_is_recovered_from_the_log_when_the_api_is_unreachable(
    sqlite_url: str,
    ray_cluster: LocalRayHead,
) -> None:
    service = build_service(
        load_settings(database_url=sqlite_url), ray=RayEndpoint(ray_cluster.dashboard_url)
    )
    ctx, store = service.ctx, service.ctx.store
    ctx.config = dataclasses.replace(
        ctx.config,
        api_url=f"http://127.0.0.1:{free_port()}",
        worker_command="python -m workers.runner --interval-s 1 --meter estimate "
        "--exchange-timeout-s 1 --flush-timeout-s 1",
    )
    service.refresh_forecasts()
    job_id = f"offline-{free_port()}"
    now = ctx.clock.now()
    job = make_job(
        job_id,
        created_at=now,
        spec=make_spec(
            policy=Policy.NOW,
            max_delay_s=0.0,
            expected_duration_s=60.0,
            entrypoint="python -c 'import time; time.sleep(3)'",
        ),
    )
    store.add_job(
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

    deadline = time.monotonic() + 120
    while store.get_job(job_id).state is not JobState.SUCCEEDED:
        assert time.monotonic() < deadline, store.get_job(job_id)
        service.plan_cycle()
        service.dispatch_due()
        service.reconcile()
        time.sleep(0.5)

    reports = store.energy_reports([job_id])
    assert reports, "no energy reached the store"
    assert {r.attempt for r in reports} == {1}
    assert {r.method.value for r in reports} == {"estimate"}
    assert {r.device for r in reports} >= {"estimate:base", "estimate:cpu"}
    span_s = (
        max(r.interval_end for r in reports) - min(r.interval_start for r in reports)
    ).total_seconds()
    assert span_s >= 2.5  # the 3 s run, cut in 1 s intervals
    assert ctx.counters["energy_reports_from_logs_total"] == len(reports)

    finished = store.get_job(job_id)
    recover_energy(ctx, finished, ctx.region(finished.region or ""))
    assert len(store.energy_reports([job_id])) == len(reports)  # idempotent

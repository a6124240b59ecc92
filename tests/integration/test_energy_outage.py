"""No energy report is lost to an API outage (issue 9, item 8): a real job on a real local Ray
head whose runner cannot reach the API at all (a closed port: no token exchange, no POST) still
has its energy stored, read back by reconcile from the ``GREENLIGHT_ENERGY`` lines in its log,
and reading them again counts nothing twice."""

from __future__ import annotations

import pytest

from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.service.reconciling import recover_energy
from tests.offline_runs import offline_service, run_now

pytestmark = pytest.mark.ray


def test_energy_is_recovered_from_the_log_when_the_api_is_unreachable(
    sqlite_url: str,
    ray_cluster: LocalRayHead,
) -> None:
    service = offline_service(sqlite_url, ray_cluster, "--interval-s 1 --meter estimate")
    ctx, store = service.ctx, service.ctx.store
    job_id = f"offline-{free_port()}"
    run_now(service, job_id, "python -c 'import time; time.sleep(3)'")

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

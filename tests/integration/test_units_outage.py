"""No unit count is lost to an API outage: a real job on a real local Ray head counts its steps
with ``workers.units`` while its runner cannot reach the API at all (a closed port: no token
exchange, no POST); reconcile reads the count back from the ``GREENLIGHT_UNITS`` lines in its
log. Reading again changes nothing, and a higher count already stored is never lowered."""

from __future__ import annotations

import dataclasses

import pytest

from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain.progress import JobProgress
from scheduler.service.reconciling import recover_energy
from tests.offline_runs import offline_service, run_now

pytestmark = pytest.mark.ray

COUNTS = (
    "python -c 'import time; from workers.units import report_units; "
    "report_units(7); time.sleep(1.5); report_units(42); time.sleep(1)'"
)


def test_the_unit_count_is_recovered_from_the_log_when_the_api_is_unreachable(
    sqlite_url: str,
    ray_cluster: LocalRayHead,
) -> None:
    service = offline_service(sqlite_url, ray_cluster, "--interval-s 0.5 --meter estimate")
    ctx, store = service.ctx, service.ctx.store
    job_id = f"units-offline-{free_port()}"
    run_now(service, job_id, COUNTS)

    final = JobProgress(job_id=job_id, attempt=1, units=42.0, unit="steps")
    assert store.job_progress([job_id]) == {job_id: final}
    assert ctx.counters["progress_from_logs_total"] == 1
    finished = store.get_job(job_id)
    assert finished.region is not None
    logs = ctx.dispatcher.logs(ctx.region(finished.region), finished.submission_id or "")
    assert "GREENLIGHT_UNITS " in logs

    recover_energy(ctx, finished, ctx.region(finished.region))  # idempotent
    assert store.job_progress([job_id]) == {job_id: final}
    assert ctx.counters["progress_from_logs_total"] == 1
    # Monotone: a higher count stored meanwhile (the API came back) is not lowered by the log.
    higher = dataclasses.replace(final, units=50.0)
    assert store.record_progress(higher)
    recover_energy(ctx, finished, ctx.region(finished.region))
    assert store.job_progress([job_id]) == {job_id: higher}

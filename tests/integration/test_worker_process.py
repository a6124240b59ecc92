"""How a dispatched job runs on a real local Ray head: Greenlight's per-job variables reach
the command through the worker runner without a per-job Ray runtime env (one per job makes
Ray's runtime-env agent set up a new environment for each)."""

from __future__ import annotations

import dataclasses
import time

import pytest
from ray.job_submission import JobSubmissionClient

from scheduler.bootstrap import RayEndpoint, build_service
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import JobState, Policy
from tests.fakes.store import make_event, make_job, make_spec

pytestmark = pytest.mark.ray

PROBE = """
import os
print("job-id:", os.environ["GREENLIGHT_JOB_ID"], "attempt:", os.environ["GREENLIGHT_ATTEMPT"])
print("token-withheld:", "GREENLIGHT_TOKEN" not in os.environ, "own:", os.environ["FROM_JOB"])
"""


def test_the_job_gets_its_variables_without_a_runtime_env_of_its_own(
    sqlite_url: str,
    ray_cluster: LocalRayHead,
) -> None:
    service = build_service(
        load_settings(database_url=sqlite_url), ray=RayEndpoint(ray_cluster.dashboard_url)
    )
    ctx, store = service.ctx, service.ctx.store
    ctx.config = dataclasses.replace(  # no API: the job runs, reporting off
        ctx.config,
        api_url=f"http://127.0.0.1:{free_port()}",
        worker_command="python -m workers.runner --meter estimate --exchange-timeout-s 1 "
        "--flush-timeout-s 1",
    )
    service.refresh_forecasts()
    job_id = f"process-{free_port()}"
    now = ctx.clock.now()
    spec = make_spec(
        policy=Policy.NOW,
        max_delay_s=0.0,
        expected_duration_s=60.0,
        entrypoint=f"python -c '{PROBE}'",
        runtime_env={"env_vars": {"FROM_JOB": "kept"}},
    )
    store.add_job(
        make_job(job_id, created_at=now, spec=spec),
        make_event(job_id, now, to_state=JobState.PENDING),
    )
    deadline = time.monotonic() + 120
    while (job := store.get_job(job_id)).state is not JobState.SUCCEEDED:
        assert time.monotonic() < deadline, job
        assert job.state is not JobState.FAILED, ctx.dispatcher.logs(
            ctx.region(job.region or ""), job.submission_id or ""
        )
        service.plan_cycle()
        service.dispatch_due()
        service.reconcile()
        time.sleep(0.5)

    logs = ctx.dispatcher.logs(ctx.region(job.region or ""), job.submission_id or "")
    assert f"job-id: {job_id} attempt: 1" in logs
    assert "token-withheld: True own: kept" in logs
    recorded = JobSubmissionClient(ray_cluster.dashboard_url).get_job_info(job.submission_id or "")
    assert (recorded.runtime_env or {}).get("env_vars") == {"FROM_JOB": "kept"}

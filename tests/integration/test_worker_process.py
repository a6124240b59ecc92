"""How a dispatched job runs on a real local Ray head: Greenlight's per-job variables reach
the command through the worker runner without a per-job Ray runtime env (one per job makes
Ray's runtime-env agent set up a new environment for each)."""

from __future__ import annotations

import pytest
from ray.job_submission import JobSubmissionClient

from scheduler.dispatch.local_ray import LocalRayHead, free_port
from tests.offline_runs import offline_service, run_now

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
    service = offline_service(sqlite_url, ray_cluster, "--meter estimate")  # reporting off
    ctx = service.ctx
    job_id = f"process-{free_port()}"
    job = run_now(
        service, job_id, f"python -c '{PROBE}'", runtime_env={"env_vars": {"FROM_JOB": "kept"}}
    )

    logs = ctx.dispatcher.logs(ctx.region(job.region or ""), job.submission_id or "")
    assert f"job-id: {job_id} attempt: 1" in logs
    assert "token-withheld: True own: kept" in logs
    recorded = JobSubmissionClient(ray_cluster.dashboard_url).get_job_info(job.submission_id or "")
    assert (recorded.runtime_env or {}).get("env_vars") == {"FROM_JOB": "kept"}

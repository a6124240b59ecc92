"""A real job on the test Ray head whose runner cannot reach the API (a closed port: no token
exchange, no POST), driven through the service's own cycles until it succeeds. Shared by the
tests of what reaches the store, or the job, without the API."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from scheduler.bootstrap import RayEndpoint, build_service
from scheduler.config import load_settings
from scheduler.dispatch.local_ray import LocalRayHead, free_port
from scheduler.domain import Job, JobState, Policy
from scheduler.service import GreenlightService
from tests.fakes.store import make_event, make_job, make_spec


def offline_service(sqlite_url: str, head: LocalRayHead, runner_flags: str) -> GreenlightService:
    """A service on ``sqlite_url`` dispatching to ``head``, its runners started with
    ``runner_flags`` and pointed at an API port nothing listens on."""
    service = build_service(
        load_settings(database_url=sqlite_url), ray=RayEndpoint(head.dashboard_url)
    )
    service.ctx.config = dataclasses.replace(
        service.ctx.config,
        api_url=f"http://127.0.0.1:{free_port()}",
        worker_command=f"python -m workers.runner {runner_flags} --exchange-timeout-s 1 "
        "--flush-timeout-s 1",
    )
    service.refresh_forecasts()
    return service


def run_now(
    service: GreenlightService,
    job_id: str,
    entrypoint: str,
    *,
    runtime_env: dict[str, Any] | None = None,
    within_s: float = 120.0,
) -> Job:
    """Submit ``entrypoint`` as job ``job_id`` (policy ``now``) and run plan, dispatch and
    reconcile until it succeeded; returns the job. Fails with the run's log if it failed."""
    ctx, store = service.ctx, service.ctx.store
    now = ctx.clock.now()
    spec = make_spec(
        policy=Policy.NOW,
        max_delay_s=0.0,
        expected_duration_s=60.0,
        entrypoint=entrypoint,
        runtime_env=runtime_env or {},
    )
    store.add_job(
        make_job(job_id, created_at=now, spec=spec),
        make_event(job_id, now, to_state=JobState.PENDING),
    )
    deadline = time.monotonic() + within_s
    while (job := store.get_job(job_id)).state is not JobState.SUCCEEDED:
        assert time.monotonic() < deadline, job
        assert job.state is not JobState.FAILED, ctx.dispatcher.logs(
            ctx.region(job.region or ""), job.submission_id or ""
        )
        service.plan_cycle()
        service.dispatch_due()
        service.reconcile()
        time.sleep(0.5)
    return job

"""The periodic reconcile asks the cluster only about the runs due (issue 8): a real store,
the service's own cycles, a cluster that counts its questions."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import Job, JobState, Policy
from scheduler.service import GreenlightService
from scheduler.service.poll_pacing import FAST_S, QUEUED_FLOOR_S
from tests.fakes.cluster import FakeCluster
from tests.fakes.store import make_event, make_job, make_spec

JOBS = 3


def _dispatched(sqlite_url: str, cluster: FakeCluster) -> tuple[GreenlightService, list[str]]:
    """A service on ``sqlite_url`` that dispatched JOBS jobs to ``cluster``, and their runs."""
    service = build_service(load_settings(database_url=sqlite_url), dispatcher=cluster)
    store = service.ctx.store
    now = service.ctx.clock.now()
    for i in range(JOBS):
        job = make_job(
            f"job-{i}", created_at=now, spec=make_spec(policy=Policy.NOW, max_delay_s=0.0)
        )
        store.add_job(job, make_event(job.id, now, to_state=JobState.PENDING))
    service.refresh_forecasts()
    service.plan_cycle()
    service.dispatch_due()
    runs = sorted(cluster.started)
    assert len(runs) == JOBS
    return service, runs


def test_a_paced_pass_asks_only_about_runs_due_and_still_sees_an_end(sqlite_url: str) -> None:
    cluster = FakeCluster()
    service, runs = _dispatched(sqlite_url, cluster)
    store = service.ctx.store

    assert service.reconcile(paced=True) == JOBS  # dispatched: each asked about, seen running
    assert store.count_by_state()[JobState.RUNNING] == JOBS
    assert all(cluster.status_calls[r] == 1 for r in runs)
    service.reconcile(paced=True)  # first seen running: a young run in that state, asked
    asked = sum(cluster.status_calls[r] for r in runs)
    assert asked == 2 * JOBS
    assert service.reconcile(paced=True) == JOBS  # at once: none is due again yet
    assert sum(cluster.status_calls[r] for r in runs) == asked
    service.reconcile()  # unpaced (a one-off pass): every run
    assert sum(cluster.status_calls[r] for r in runs) == asked + JOBS

    cluster.finish(runs[0])
    time.sleep(FAST_S)  # a young run is due again after one tick of the loop
    service.reconcile(paced=True)
    counts = store.count_by_state()
    assert (counts[JobState.SUCCEEDED], counts[JobState.RUNNING]) == (1, JOBS - 1)


def test_queued_runs_are_asked_about_slowly_until_their_runner_starts(sqlite_url: str) -> None:
    cluster = FakeCluster(queued=True)
    service, runs = _dispatched(sqlite_url, cluster)
    ctx, store = service.ctx, service.ctx.store
    for _ in range(3):
        service.reconcile(paced=True)
    # Asked once when dispatched, then not again within QUEUED_FLOOR_S: a queued run can only
    # start, and its runner says when.
    assert [cluster.status_calls[r] for r in runs] == [1] * JOBS

    cluster.start(runs[0])  # its runner starts and trades its one-time credential
    ctx.wake_reconciler.clear()
    service.exchange_token(cluster.envs[runs[0]]["GREENLIGHT_TOKEN"])
    assert ctx.wake_reconciler.is_set()  # the exchange wakes reconcile
    service.reconcile(paced=True)
    assert [cluster.status_calls[r] for r in runs] == [2, 1, 1]
    assert store.count_by_state()[JobState.RUNNING] == 1

    # A queued run whose runner never got through to the API still has its end noticed, at
    # the queued pace: it ran and ended between two looks.
    cluster.finish(runs[1])
    service.reconcile(paced=True)
    assert store.count_by_state()[JobState.SUCCEEDED] == 0
    time.sleep(QUEUED_FLOOR_S)
    service.reconcile(paced=True)
    assert store.count_by_state()[JobState.SUCCEEDED] == 1
    service.reconcile()  # unpaced (a one-off pass): every run, queued or not
    assert cluster.status_calls[runs[2]] == 3


def test_a_pass_reads_in_full_only_the_runs_it_asks_about(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = FakeCluster()
    service, _runs = _dispatched(sqlite_url, cluster)
    store = service.ctx.store
    read: list[list[str]] = []
    get_jobs = store.get_jobs

    def recording(job_ids: Sequence[str]) -> dict[str, Job]:
        read.append(sorted(job_ids))
        return get_jobs(job_ids)

    monkeypatch.setattr(store, "get_jobs", recording)
    every = [f"job-{i}" for i in range(JOBS)]
    assert service.reconcile(paced=True) == JOBS  # dispatched: each asked about
    assert service.reconcile(paced=True) == JOBS  # first seen running: asked again
    assert service.reconcile(paced=True) == JOBS  # none due: counted, none read in full
    assert read == [every, every, []]
    assert store.count_by_state()[JobState.RUNNING] == JOBS

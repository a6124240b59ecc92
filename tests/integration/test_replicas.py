"""Two service replicas over one PostgreSQL schema, each dispatching and reconciling in its own
thread as fast as it can: every attempt gets exactly one ``dispatch`` event, one worker
credential and one run, whatever the interleaving (issue 9, item 5)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import JobEvent, JobState, Policy, Role
from scheduler.service import GreenlightService
from tests.fakes.cluster import FakeCluster
from tests.fakes.store import make_job, make_spec

pytestmark = pytest.mark.postgres
JOBS = 100


def _replica(pg_url: str, cluster: FakeCluster) -> GreenlightService:
    return build_service(load_settings(database_url=pg_url), dispatcher=cluster)


def test_two_replicas_record_one_dispatch_per_attempt(pg_url: str) -> None:
    # 20 ms per submit: the window in which the other replica's reconcile sees the claimed
    # attempt as unknown to the cluster (how 18 of 60 jobs got two dispatch events).
    cluster = FakeCluster(latency_s=0.02)
    a, b = _replica(pg_url, cluster), _replica(pg_url, cluster)
    store = a.ctx.store
    now = a.ctx.clock.now()
    for i in range(JOBS):
        job = make_job(
            f"job-{i:03d}", created_at=now, spec=make_spec(policy=Policy.NOW, max_delay_s=0.0)
        )
        store.add_job(
            job,
            JobEvent(
                job_id=job.id,
                at=now,
                kind="state",
                actor="test",
                reason="submitted",
                to_state=JobState.PENDING,
            ),
        )
    a.refresh_forecasts()
    a.plan_cycle()
    assert store.count_by_state()[JobState.PLANNED] == JOBS

    errors: list[BaseException] = []

    def run(service: GreenlightService) -> None:
        try:
            for _ in range(40):
                service.dispatch_due()
                service.reconcile()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors

    counts = store.count_by_state()
    assert counts[JobState.RUNNING] == JOBS, counts
    dispatch_events: Counter[str] = Counter()
    for i in range(JOBS):
        job_id = f"job-{i:03d}"
        events = store.events(job_id)
        dispatch_events[job_id] = sum(1 for e in events if e.kind == "dispatch")
        assert store.get_job(job_id).attempt == 1
    assert set(dispatch_events.values()) == {1}, dispatch_events
    credentials = Counter(
        t.job_id for t in store.list_tokens() if t.role is Role.BOOTSTRAP and t.job_id
    )
    assert len(credentials) == JOBS
    assert set(credentials.values()) == {1}
    assert len(cluster.started) == JOBS
    assert set(cluster.started.values()) == {1}
    # Both replicas did part of the work (the test would prove nothing with one idle).
    assert a.ctx.counters["jobs_dispatched_total"] > 0
    assert b.ctx.counters["jobs_dispatched_total"] > 0
    assert (
        a.ctx.counters["jobs_dispatched_total"] + b.ctx.counters["jobs_dispatched_total"]
    ) == JOBS

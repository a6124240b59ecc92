"""The API and the cycles in separate processes share the store only (issue 8, item 3): an
arrival in the API wakes the scheduler's planner, and the admission ledger the API checks is the
one the scheduler's plan cycle left, read back from the store, plus the API's own arrivals.

Two services over one database stand for the two processes (each has its own engine, context
and threads, as each process would); the real subprocesses are in test_scheduler_process.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import cast

import numpy as np
import pytest

from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import Principal, Resources, Role
from scheduler.process import attach_api, attach_scheduler
from scheduler.service import GreenlightService, admission
from scheduler.service.admission import planning_job
from scheduler.service.remote_cycles import SchedulerFollower
from scheduler.store import ledger as stored_ledger
from scheduler.store.sql import SqlStore
from tests.fakes.cluster import FakeCluster
from tests.fakes.store import make_job, make_spec

USER = Principal(tenant="acme", role=Role.USER, token_id="t")


@pytest.fixture
def pair(database_url: str) -> Iterator[tuple[GreenlightService, GreenlightService]]:
    """(api, scheduler): two services on one database, wired as the two processes are."""
    settings = load_settings(database_url=database_url)
    cluster = FakeCluster()
    scheduler = build_service(settings, dispatcher=cluster)
    api = build_service(settings, dispatcher=cluster, migrate=False)
    scheduler.refresh_forecasts()
    detach_scheduler = attach_scheduler(scheduler)
    detach_api = attach_api(api)
    try:
        yield api, scheduler
    finally:
        detach_api()
        detach_scheduler()
        for service in (api, scheduler):
            cast(SqlStore, service.ctx.store).close()


def _follower(api: GreenlightService) -> SchedulerFollower:
    follower = api.ctx.remote_cycles
    assert isinstance(follower, SchedulerFollower)
    return follower


def test_an_arrival_in_the_api_wakes_the_scheduler_planner(
    pair: tuple[GreenlightService, GreenlightService],
) -> None:
    api, scheduler = pair
    time.sleep(0.5)  # the watcher's first read: counters bumped before it started are old news
    scheduler.ctx.wake_planner.clear()
    began = time.monotonic()
    api.submit(make_spec(), USER)
    assert scheduler.ctx.wake_planner.wait(5.0), "the scheduler's planner was not woken"
    took_s = time.monotonic() - began
    # PostgreSQL: LISTEN/NOTIFY; SQLite: the counters polled every 0.1 s. Both well under 1 s.
    assert took_s < 1.0, took_s
    assert not scheduler.ctx.wake_dispatcher.is_set()
    # A burst of arrivals is one wake-up, not one per submit.
    forwarded = api.ctx.counters["wakeups_forwarded_total"]
    for _ in range(20):
        api.submit(make_spec(), USER)
    time.sleep(0.5)
    assert 1 <= api.ctx.counters["wakeups_forwarded_total"] - forwarded <= 5


def test_ledger_read_from_the_store_is_the_scheduler_ledger(
    pair: tuple[GreenlightService, GreenlightService],
) -> None:
    api, scheduler = pair
    for gpus in (1, 2, 4):
        api.submit(make_spec(resources=Resources(gpus=gpus)), USER)
    time.sleep(1.2)  # past the margin: the cycle's snapshot counts these three
    scheduler.plan_cycle()
    _follower(api).poll()
    mine, theirs = api.ctx.admission, scheduler.ctx.admission
    assert mine is not None
    assert theirs is not None
    assert mine is not theirs
    assert mine.grid == theirs.grid
    assert [r.name for r in mine.regions] == [r.name for r in theirs.regions]
    np.testing.assert_array_equal(mine.free, theirs.free)
    np.testing.assert_array_equal(mine.hard, theirs.hard)
    np.testing.assert_array_equal(mine.prices, theirs.prices)
    assert mine.free.sum() < mine.hard.sum()  # the three plans are in it
    now = api.ctx.clock.now()
    for k, (gpus, delay_s) in enumerate([(1, 0.0), (2, 600.0), (8, 0.0), (1, 9e3), (64, 9e3)]):
        spec = make_spec(resources=Resources(gpus=gpus), max_delay_s=delay_s)
        probe = planning_job(api.ctx, make_job(f"probe-{k}", created_at=now, spec=spec))
        assert mine.check(probe, now) == theirs.check(probe, now)


def test_arrivals_after_the_cycle_stay_reserved_when_its_ledger_is_adopted(
    pair: tuple[GreenlightService, GreenlightService],
) -> None:
    api, scheduler = pair
    scheduler.plan_cycle()
    _follower(api).poll()
    cycle_ledger = scheduler.ctx.admission
    assert api.ctx.admission is not None
    assert cycle_ledger is not None
    snapshot_at = api.ctx.clock.now()  # the cycle read its snapshot before the arrival
    before = api.ctx.admission.free.sum()
    late = api.submit(make_spec(resources=Resources(gpus=2), max_delay_s=0.0), USER)
    held = api.ctx.admission.free.sum()
    assert held < before
    # Another cycle's ledger from a snapshot without the arrival: adopting it keeps the
    # arrival's reservation rather than forgetting it until the next cycle.
    body = stored_ledger.encode(cycle_ledger, snapshot_at)
    admission.adopt(api.ctx, stored_ledger.decode(body).ledger, snapshot_at)
    assert api.ctx.admission.free.sum() == held
    assert late.id in api.ctx.admission_times
    # A ledger from a snapshot well after it counts it already: nothing is carried twice.
    later = snapshot_at + timedelta(seconds=5)
    admission.adopt(api.ctx, stored_ledger.decode(body).ledger, later)
    assert api.ctx.admission.free.sum() == before
    assert late.id not in api.ctx.admission_times

"""The plan cycle end to end, store included (issue 8, item 3).

For each backend (SQLite file, PostgreSQL schema) and queue size (10k, 100k pending jobs over
10 regions), times ``GreenlightService.plan_cycle`` as the service runs it: read the jobs (only
the columns planning needs), build the snapshot, plan (pure core), write the changed plans and
their events back in bulk, one transaction. Rows:

* ``first``: the first cycle over a fresh queue (every job gets a plan: the largest write).
* ``restart``: a new process over the same database, plans already stored (reads everything,
  writes only what changed): the "first cycle after a restart" target, <= 10 s at 100k.
* ``later``: the next cycles of that process, after 100 new arrivals each (the job table is
  kept and only changed rows are read): target <= 5 s at 100k.

The clock is fixed (``START``) and moves a minute before the restart and before each later
cycle, so runs compare like with like; after each cycle the jobs it made due are claimed, as
the dispatcher would claim them, so they hold their GPUs as started jobs. The first cycle
makes a tenth of the queue due at once; as many new jobs are queued and planned (``top-up``)
before the restart, so the cycles measured still plan ~100k pending jobs (``pending``).

Jobs are Philly-sized (1-8 GPUs, 1 min to 24 h, deadlines within 48 h, at least 1 h of
slack); each region has GPUs for 1.5 times the average load (the planner under contention is
``bench/plan_speed.py``'s subject), forecasts are 48 h at 5-minute slots (a daily curve per
region with its own phase and level). ``planning_budget_s`` is 0.3 s, as configured by default.

Run: ``.venv/bin/python bench/plan_cycle_store.py [--sizes 10000 100000] [--backends sqlite
postgresql]``; PostgreSQL from ``GREENLIGHT_TEST_POSTGRES_URL`` (default: the test database).
The table goes to stdout (saved in ``bench/results/plan_cycle_store.txt``).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from scheduler.domain import (
    PLANNABLE_STATES,
    Forecast,
    IntensityPoint,
    Job,
    JobEvent,
    JobKind,
    JobSpec,
    JobState,
    Policy,
    Region,
    Resources,
    SeriesKind,
)
from scheduler.service import GreenlightService, ServiceConfig, ServiceContext
from scheduler.store.migrate import upgrade
from scheduler.store.rows import event_values, job_values
from scheduler.store.sql import SqlStore, create_store_engine
from scheduler.store.tables import job_events, jobs

POSTGRES_URL = os.environ.get(
    "GREENLIGHT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REGIONS = 10
HORIZON_S = 48 * 3600
STEP_S = 300
ARRIVALS = 100
LATER_CYCLES = 3


# A fixed start, so every run plans the same queue against the same forecasts and an A/B of
# two commits compares like with like (the wall clock moved the late set run to run).
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
# The clock's step between later cycles: a cycle a minute, as the service runs them.
CYCLE_GAP = timedelta(seconds=60)


class FixedClock:
    """The bench's clock: ``START``, moved on by ``advance`` between cycles."""

    def __init__(self) -> None:
        self.at = START

    def now(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        self.at += by

    def from_wall(self, wall: datetime) -> datetime:
        return wall


def regions_for(jobs: int) -> dict[str, Region]:
    # Average load: ~2.7 GPUs x ~3.2 h per job over 48 h; 1.5 times that as capacity, so the
    # cycle's cost is the store's and the placement's, not a deadline repair of an
    # overloaded queue (bench/plan_speed.py measures the planner under contention).
    gpus = max(8, int(jobs * 2.7 * 3.2 / 48 / REGIONS * 1.5))
    return {
        f"r{i}": Region(name=f"r{i}", grid_zone=f"Z{i}", provider="replay", gpus=gpus)
        for i in range(REGIONS)
    }


def forecasts(now: datetime) -> list[Forecast]:
    start = now.replace(minute=0, second=0, microsecond=0)
    out = []
    for i in range(REGIONS):
        level, phase = 150 + 40 * i, i * 0.6
        points = tuple(
            IntensityPoint(
                valid_at=start + timedelta(seconds=k * STEP_S),
                g_per_kwh=level * (1 + 0.4 * math.sin(2 * math.pi * k * STEP_S / 86400 + phase)),
            )
            for k in range(HORIZON_S // STEP_S + 12)
        )
        out.append(
            Forecast(
                zone=f"Z{i}",
                provider="replay",
                kind=SeriesKind.FORECAST,
                issued_at=now - timedelta(minutes=1),
                resolution_s=STEP_S,
                points=points,
            )
        )
    return out


def make_jobs(count: int, now: datetime, rng: random.Random, prefix: str) -> list[Job]:
    out = []
    for i in range(count):
        gpus = rng.choice((1, 1, 1, 2, 2, 4, 8))
        duration_s = float(min(86400, max(60, int(rng.lognormvariate(8.5, 1.3)))))
        slack_s = rng.uniform(3600, HORIZON_S - duration_s)
        spec = JobSpec(
            tenant=f"t{i % 20}",
            name=f"job {i}",
            kind=JobKind.TRAINING,
            entrypoint="python train.py",
            home_region=f"r{rng.randrange(REGIONS)}",
            resources=Resources(gpus=gpus, cpus=4.0),
            expected_duration_s=duration_s,
            max_delay_s=slack_s,
            policy=Policy.GREENLIGHT,
            expected_power_w=300.0 * gpus + 68.0,
        )
        out.append(
            Job(
                id=f"{prefix}{i:07d}",
                spec=spec,
                state=JobState.PENDING,
                created_at=now,
                updated_at=now,
            )
        )
    return out


def insert(store: SqlStore, new: list[Job]) -> None:
    """Bulk insert (the bench's setup, not what it measures)."""
    with store.engine.begin() as conn:
        for k in range(0, len(new), 5000):
            chunk = new[k : k + 5000]
            conn.execute(sa.insert(jobs), [job_values(j) for j in chunk])
            conn.execute(
                sa.insert(job_events),
                [
                    event_values(
                        JobEvent(
                            job_id=j.id,
                            at=j.created_at,
                            kind="state",
                            actor="bench",
                            reason="submitted",
                            to_state=JobState.PENDING,
                        )
                    )
                    for j in chunk
                ],
            )


def service_over(url: str, regions: dict[str, Region], clock: FixedClock) -> GreenlightService:
    """A fresh process's service: new context, new job table, its own engine."""
    store = SqlStore(create_store_engine(url))
    if PROFILE:
        time_store_calls(store)
    ctx = ServiceContext(
        store=store,
        regions=regions,
        dispatcher=None,  # type: ignore[arg-type]
        clock=clock,
        providers={},
        refresher=None,
        config=ServiceConfig(step_s=STEP_S),
    )
    return GreenlightService(ctx)


STORE_TIMES: dict[str, float] = {}
PROFILE = False


def time_store_calls(store: SqlStore) -> None:
    """``--profile``: wrap the store's public methods to sum their seconds per cycle."""

    def wrap(name: str, method: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                STORE_TIMES[name] = STORE_TIMES.get(name, 0.0) + time.perf_counter() - t0

        return timed

    for name in dir(store):
        if not name.startswith("_") and name not in {"engine", "use_rollup"}:
            method = getattr(store, name)
            if callable(method):
                setattr(store, name, wrap(name, method))


def timed_cycle(service: GreenlightService) -> tuple[float, int, int]:
    """The cycle's seconds, the plans it wrote and the plannable jobs it had."""
    queued = pending(service)
    before = service.ctx.counters["plans_changed_total"]
    STORE_TIMES.clear()
    start = time.perf_counter()
    service.plan_cycle()
    took = time.perf_counter() - start
    if PROFILE:
        parts = sorted(STORE_TIMES.items(), key=lambda kv: -kv[1])
        print(
            f"    store {sum(STORE_TIMES.values()):.2f} s of {took:.2f} s: "
            + ", ".join(f"{k} {v:.2f}" for k, v in parts if v >= 0.01),
            flush=True,
        )
    return took, service.ctx.counters["plans_changed_total"] - before, queued


def pending(service: GreenlightService) -> int:
    counts = service.ctx.store.count_by_state()
    return sum(counts.get(state, 0) for state in PLANNABLE_STATES)


def dispatch(service: GreenlightService, clock: FixedClock) -> None:
    """Claim the jobs the cycle made due, as the service's dispatcher does at once: they hold
    their GPUs from then on (occupancy) instead of piling up at "now" in later cycles."""
    service.ctx.store.claim_due(clock.now(), 1_000_000)


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="gl-bench-"))
        try:
            yield f"sqlite:///{folder / 'greenlight.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    admin = sa.create_engine(POSTGRES_URL)
    schema = f"gl_bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            sa.make_url(POSTGRES_URL)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def bench(backend: str, size: int, seed: int) -> list[tuple[str, float, int, int]]:
    rng = random.Random(seed)
    rows: list[tuple[str, float, int, int]] = []
    with database(backend) as url:
        upgrade(url)
        regions = regions_for(size)
        clock = FixedClock()
        now = clock.now()
        first = service_over(url, regions, clock)
        first.ctx.store.sync_regions(list(regions.values()))
        for series in forecasts(now):
            first.ctx.store.append_forecast(series)
        insert(first.ctx.store, make_jobs(size, now, rng, "j"))
        rows.append(("first", *timed_cycle(first)))
        dispatch(first, clock)
        top = size - pending(first)  # the jobs due at once were dispatched: queue them anew
        if top > 0:
            insert(first.ctx.store, make_jobs(top, clock.now(), rng, "t"))
            rows.append((f"top-up +{top}", *timed_cycle(first)))
            dispatch(first, clock)
        first.ctx.store.close()  # type: ignore[attr-defined]
        clock.advance(CYCLE_GAP)  # a restart comes after the queue was written
        restarted = service_over(url, regions, clock)
        rows.append(("restart", *timed_cycle(restarted)))
        dispatch(restarted, clock)
        for n in range(LATER_CYCLES):
            clock.advance(CYCLE_GAP)
            insert(restarted.ctx.store, make_jobs(ARRIVALS, clock.now(), rng, f"a{n}-"))
            rows.append((f"later +{ARRIVALS}", *timed_cycle(restarted)))
            dispatch(restarted, clock)
        restarted.ctx.store.close()  # type: ignore[attr-defined]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile", action="store_true", help="print each cycle's seconds in store calls"
    )
    args = parser.parse_args()
    global PROFILE
    PROFILE = args.profile
    print(
        f"# plan_cycle_store  {datetime.now(UTC).isoformat(timespec='seconds')}  "
        f"{REGIONS} regions, 48 h at {STEP_S // 60}-min slots, planning budget 0.3 s"
    )
    print(
        f"{'backend':<10} {'jobs':>7}  {'cycle':<14} {'pending':>7} {'seconds':>8}  "
        f"{'plans written':>13}"
    )
    for backend in args.backends:
        for size in args.sizes:
            for name, seconds, written, queued in bench(backend, size, args.seed):
                print(
                    f"{backend:<10} {size:>7}  {name:<14} {queued:>7} {seconds:>8.2f}  "
                    f"{written:>13}",
                    flush=True,
                )
    print("targets (100k): later cycles <= 5 s, first cycle after a restart <= 10 s")


if __name__ == "__main__":
    main()

"""What a reconcile pass reads from the store while many jobs run (issue 8: cluster scale).

Reconcile runs every half second while jobs run, and its pacing (``poll_pacing``) asks the
cluster about only the runs due: with 1,000 long runs, ~35 a pass. Side by side, in one
process, on the same stored jobs (``--running`` jobs running, plus ``--history`` finished
ones), the store reads of one pass:

* ``every row`` (before): every started job's full row (``list_jobs``), then the dispatch
  marks of all of them (``dispatch_marks``), as the pass read until 2026-12-07;
* ``light`` (now): every started job as a few short columns with its marks
  (``started_runs``), then the full rows of the runs due (``get_jobs``, ``--due`` of them).

Prints milliseconds per pass (median of ``--passes``) and the ratio.

Run: ``.venv/bin/python bench/reconcile_read.py [--backends sqlite postgresql]
[--running 1000 5000] [--due 0.035]``; PostgreSQL from ``GREENLIGHT_TEST_POSTGRES_URL``
(default: the test database). The table goes to stdout (``bench/results/reconcile_read.txt``).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.plan_cycle_store import database, insert, make_jobs  # noqa: E402
from scheduler.domain import JobState  # noqa: E402
from scheduler.service.snapshots import STARTED_STATES  # noqa: E402
from scheduler.store.migrate import upgrade  # noqa: E402
from scheduler.store.sql import SqlStore, create_store_engine  # noqa: E402

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def load(store: SqlStore, running: int, history: int, rng: random.Random) -> None:
    started = [
        dataclasses.replace(
            job,
            state=JobState.RUNNING,
            region=job.spec.home_region,
            submission_id=f"gl-{job.id}-1",
            attempt=1,
            started_at=NOW - timedelta(minutes=rng.randrange(1, 600)),
        )
        for job in make_jobs(running, NOW, rng, "r")
    ]
    finished = [
        dataclasses.replace(
            job,
            state=JobState.SUCCEEDED,
            region=job.spec.home_region,
            submission_id=f"gl-{job.id}-1",
            attempt=1,
            started_at=NOW - timedelta(days=2),
            finished_at=NOW - timedelta(days=1),
        )
        for job in make_jobs(history, NOW - timedelta(days=3), rng, "h")
    ]
    insert(store, started + finished)


def every_row(store: SqlStore) -> int:
    jobs, _ = store.list_jobs(states=STARTED_STATES, limit=1_000_000, count=False)
    store.dispatch_marks([j.id for j in jobs])
    return len(jobs)


def light(store: SqlStore, due_share: float) -> int:
    runs = store.started_runs(STARTED_STATES)
    due = runs[: max(1, round(len(runs) * due_share))]
    store.get_jobs([r.job_id for r in due])
    return len(runs)


def timed_ms(fn: Callable[[], object], passes: int) -> float:
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--running", type=int, nargs="+", default=[1_000, 5_000])
    parser.add_argument("--history", type=int, default=50_000)
    parser.add_argument("--due", type=float, default=0.035)
    parser.add_argument("--passes", type=int, default=30)
    args = parser.parse_args()
    print(
        f"# reconcile_read  {datetime.now(UTC).isoformat(timespec='seconds')}  "
        f"history {args.history:,} finished jobs, {args.due:.1%} of the runs due a pass, "
        f"median of {args.passes} passes"
    )
    print(f"{'backend':<10} {'running':>7}  {'every row ms':>12} {'light ms':>9} {'ratio':>6}")
    for backend in args.backends:
        for running in args.running:
            with database(backend) as url:
                upgrade(url)
                store = SqlStore(create_store_engine(url))
                load(store, running, args.history, random.Random(7))
                assert every_row(store) == light(store, args.due) == running
                before = timed_ms(lambda s=store: every_row(s), args.passes)
                after = timed_ms(lambda s=store: light(s, args.due), args.passes)
                store.close()
            print(
                f"{backend:<10} {running:>7}  {before:>12.1f} {after:>9.1f} "
                f"{before / after:>5.1f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()

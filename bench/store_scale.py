"""The store at a million jobs (issue 8, item 4), in process, on PostgreSQL.

Loads ``--stored`` finished jobs (each with an event and an energy report, the last 30 days)
and ``--queued`` pending ones into a schema of the test database, kept under the name
``--keep`` (default ``gl_scale``; ~2 GB: drop it when done) so a second run skips the load
(a schema loaded before a later migration needs that migration's columns), then times, in
one process, the old and the new path side by side:

* ``list``: ``GET /v1/jobs?state=..&limit=50`` through the service (store query and the
  response model), p50/p99 of 200 calls per state;
* ``report``: the admin savings report through the service, raw SQL sums vs the hourly rollup
  (median of 3).

Usage::

    .venv/bin/python bench/store_scale.py [--stored 1000000] [--queued 100000] [--keep NAME]
        [--parts list report http]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench import api_load  # noqa: E402
from scheduler.bootstrap import build_service  # noqa: E402
from scheduler.config import load_settings  # noqa: E402
from scheduler.store.migrate import upgrade  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def schema_url(schema: str) -> str:
    url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def ensure_loaded(schema: str, stored: int, queued: int) -> str:
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    admin.dispose()
    url = schema_url(schema)
    upgrade(url)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        have = conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one()
    if have < stored + queued:
        now = datetime.now(UTC)
        from scheduler.store.sql import SqlStore

        store = SqlStore(engine)
        t0 = time.perf_counter()
        api_load.load_queued(store, queued, now)
        api_load.load_finished(engine, stored, now)
        print(f"loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()
    return url


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--keep", default="gl_scale")
    parser.add_argument("--load-only", action="store_true")
    parser.add_argument("--parts", nargs="*", default=["list", "report"])
    args = parser.parse_args(argv)
    url = ensure_loaded(args.keep, args.stored, args.queued)
    if args.load_only:
        return 0
    api_load.CONFIG = api_load.bench_config(Path(tempfile.mkdtemp(prefix="gl-scale-")))
    settings = load_settings(api_load.CONFIG, database_url=url)
    service: Any = build_service(settings)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"# bench/store_scale.py {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, PostgreSQL, "
        f"{args.stored:,} finished + {args.queued:,} pending jobs, load average {load}"
    )
    if "list" in args.parts:
        bench_list(service)
    if "report" in args.parts:
        bench_report(service)
    if "http" in args.parts:
        bench_http(service, url)
    return 0


def bench_http(service: Any, url: str) -> None:
    """``GET /v1/jobs?state=..&limit=50`` over HTTP, 8 clients, as ``bench/api_load.py`` does
    (``greenlight serve`` with its cycles, Ray refused), first pages and keyset pages."""
    from scheduler.domain import JobState, Role

    token = service.create_token(tenant="bench", role=Role.USER)[0]
    principal = service.authenticate(token)
    page = service.list_jobs(principal, state=JobState.SUCCEEDED, limit=50)
    with api_load.greenlight_server(url) as api:
        time.sleep(20)
        for what, paths in (
            (
                "first pages",
                ["/v1/jobs?state=pending&limit=50", "/v1/jobs?state=succeeded&limit=50"],
            ),
            ("keyset page", [f"/v1/jobs?state=succeeded&limit=50&cursor={page.next_cursor}"]),
        ):
            r = api_load.drive(url=api, token=token, mode="get", clients=8, seconds=15, paths=paths)
            print(f"HTTP GET /v1/jobs?state=..&limit=50 {what}, 8 clients: {api_load.fmt(r)}")


def bench_list(service: Any) -> None:
    from scheduler.api.schemas import JobPublic
    from scheduler.domain import JobState, Role

    principal = service.authenticate(service.create_token(tenant="bench", role=Role.USER)[0])
    for state in (JobState.PENDING, JobState.SUCCEEDED):
        for cursor in (False, True):
            times = []
            next_cursor = None
            for _ in range(200):
                t0 = time.perf_counter()
                page = service.list_jobs(
                    principal, state=state, limit=50, cursor=next_cursor if cursor else None
                )
                [JobPublic.of(j).model_dump_json() for j in page.jobs]
                times.append(time.perf_counter() - t0)
                next_cursor = page.next_cursor
            how = "keyset pages" if cursor else "first page"
            print(
                f"list state={state.value} limit=50 {how}: p50 {1e3 * pct(times, 0.5):.1f} ms"
                f"  p99 {1e3 * pct(times, 0.99):.1f} ms"
            )


def bench_report(service: Any) -> None:
    from scheduler.domain import Principal, Role

    admin = Principal(tenant="ops", role=Role.ADMIN, token_id="bench")
    store = service.ctx.store
    t0 = time.perf_counter()
    built = store.rebuild_savings_rollup(datetime.now(UTC), float(service.ctx.config.step_s))
    print(f"rollup rebuild ({built.new_hours} hours): {time.perf_counter() - t0:.2f} s")
    totals = {}
    for use_rollup in (False, True):
        store.use_rollup = use_rollup
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            report = service.savings_report(admin)
            times.append(time.perf_counter() - t0)
        totals[use_rollup] = report.total
        how = "rollup + raw edges" if use_rollup else "raw SQL sums"
        print(
            f"admin savings report, {how}, {report.total.jobs:,} jobs: "
            f"{statistics.median(times):.2f} s (median of 3)"
        )
    a, b = totals[False], totals[True]
    print(
        f"  totals agree: jobs {a.jobs == b.jobs}, emissions "
        f"{abs(a.emissions_g - b.emissions_g) <= 1e-9 * abs(a.emissions_g)}, baseline "
        f"{abs(a.baseline_g - b.baseline_g) <= 1e-9 * abs(a.baseline_g)}"
    )


if __name__ == "__main__":
    raise SystemExit(main())

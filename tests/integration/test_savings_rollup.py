"""The savings rollup gives the same sums as the raw SQL path (SQLite and PostgreSQL).

Every comparison runs the store's two savings queries twice on the same data: once reading
raw rows only (``use_rollup = False``, the path the rollup replaces) and once reading the
rollup for the hours it holds plus raw rows for the rest. They must agree after the rollup is
built, while hours are dirty (a job finished after its hour was rolled up, energy arriving
late), after the dirty hours are recomputed, and after retention deleted events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from scheduler.bootstrap import build_service
from scheduler.config import load_settings
from scheduler.domain import (
    EnergyReport,
    Job,
    JobEvent,
    JobKind,
    JobSpec,
    JobState,
    MeterMethod,
    Resources,
)
from scheduler.service import GreenlightService, views
from scheduler.store.rollup import floor_hour
from scheduler.store.tables import savings_rollup_dirty, savings_rollup_jobs
from tests.fakes.clock import FakeClock
from tests.integration.test_cli import in_process, ok
from tests.integration.test_savings_aggregate import ADMIN, T0, close, ran

NOW = T0 + timedelta(days=4)
STEP_S = 300.0
FILTERS: list[dict[str, Any]] = [
    {},
    {"tenant": "acme"},
    {"region": "eu-south"},
    {"group_id": "sweep"},
    {"split": "kind"},
    {"split": "group", "tenant": "globex"},
    # partial edge hours at both ends, and whole hours
    {"start": T0 + timedelta(hours=5, minutes=30), "end": T0 + timedelta(hours=30, minutes=15)},
    {"start": T0 + timedelta(hours=10), "end": T0 + timedelta(hours=20)},
    {"start": T0 + timedelta(hours=40)},
    {"end": T0 + timedelta(hours=12, seconds=1)},
]


@pytest.fixture
def service(database_url: str) -> GreenlightService:
    svc = build_service(load_settings(database_url=database_url), clock=FakeClock(NOW))
    ran(svc, 60, seed=3)
    return svc


def _sums(service: GreenlightService, rolled: bool, **filters: Any) -> tuple[Any, Any]:
    store: Any = service.ctx.store
    store.use_rollup = rolled
    try:
        counts = store.savings_job_counts(**filters, now=NOW, step_s=STEP_S)
        buckets = store.savings_energy_buckets(**filters)
    finally:
        store.use_rollup = True
    return (
        {
            (c.tenant, c.region, c.day, c.split_key): [
                c.jobs,
                c.delay_s,
                c.gpu_s,
                c.cpu_s,
                c.deadline_misses,
                c.moved_in_time,
                c.moved_in_space,
            ]
            for c in counts
        },
        {(b.tenant, b.region, b.home_region, b.split_key, b.hour, b.baseline): b for b in buckets},
    )


def assert_rollup_matches(service: GreenlightService) -> None:
    """The rollup path's sums equal the raw path's, for every filter in ``FILTERS``."""
    for filters in FILTERS:
        raw_counts, raw_energy = _sums(service, False, **filters)
        counts, energy = _sums(service, True, **filters)
        assert counts.keys() == raw_counts.keys(), filters
        for key, figures in raw_counts.items():
            assert counts[key] == pytest.approx(figures, rel=1e-9), (filters, key)
        assert energy.keys() == raw_energy.keys(), filters
        for key, bucket in raw_energy.items():
            assert energy[key].energy_j == pytest.approx(bucket.energy_j, rel=1e-9), key
            assert energy[key].estimated_j == pytest.approx(bucket.estimated_j, rel=1e-9), key


def _rolled_rows(service: GreenlightService) -> int:
    with service.ctx.store.engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(savings_rollup_jobs)).scalar_one()
        )


def _dirty(service: GreenlightService) -> set[int]:
    with service.ctx.store.engine.connect() as conn:
        return set(conn.execute(sa.select(savings_rollup_dirty.c.started_hour)).scalars())


def test_rollup_equals_the_raw_sums(service: GreenlightService) -> None:
    store: Any = service.ctx.store
    assert_rollup_matches(service)  # no rollup yet: raw only
    built = store.refresh_savings_rollup(NOW, STEP_S)  # none yet: built from scratch
    assert built.rebuilt
    assert _rolled_rows(service) > 0
    assert _dirty(service) == set()
    assert_rollup_matches(service)
    # Something is really read from the rollup: with its rows doubled the sums differ.
    with store.engine.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(savings_rollup_jobs))]
        conn.execute(sa.insert(savings_rollup_jobs), rows)
    doubled, _ = _sums(service, True)
    raw, _ = _sums(service, False)
    assert sum(v[0] for v in doubled.values()) == 2 * sum(v[0] for v in raw.values())
    store.rebuild_savings_rollup(NOW, STEP_S)
    assert_rollup_matches(service)


def _running_job(service: GreenlightService, started: datetime) -> Job:
    spec = JobSpec(
        tenant="acme",
        name="late",
        kind=JobKind.TRAINING,
        entrypoint="true",
        home_region="eu-central",
        expected_duration_s=3600.0,
        max_delay_s=3600.0,
        resources=Resources(gpus=2, cpus=4.0),
        group_id="sweep",
    )
    job = Job(
        id="late-1",
        spec=spec,
        state=JobState.RUNNING,
        created_at=started - timedelta(hours=3),
        updated_at=started,
        attempt=1,
        region="us-west",
        submission_id="late-1-1",
        started_at=started,
    )
    event = JobEvent(job_id=job.id, at=started, kind="state", actor="test", reason="running")
    service.ctx.store.add_jobs([(job, event)])
    return job


def _report(job: Job, at: datetime, energy_j: float) -> EnergyReport:
    return EnergyReport(
        job_id=job.id,
        attempt=1,
        node="n",
        device="gpu:0",
        interval_start=at,
        interval_end=at + timedelta(minutes=20),
        energy_j=energy_j,
        method=MeterMethod.NVML_COUNTER,
    )


def test_a_job_finishing_after_its_hour_was_rolled_up(service: GreenlightService) -> None:
    store: Any = service.ctx.store
    started = T0 + timedelta(hours=20, minutes=7)
    job = _running_job(service, started)
    store.add_energy_reports([_report(job, started + timedelta(minutes=5), 4e6)])
    store.rebuild_savings_rollup(NOW, STEP_S)
    assert_rollup_matches(service)  # the running job is read raw, its run time up to now
    store.transition(
        job.id,
        JobState.SUCCEEDED,
        JobEvent(
            job_id=job.id, at=started + timedelta(hours=9), kind="state", actor="t", reason="ok"
        ),
        finished_at=started + timedelta(hours=9),
        exit_code=0,
    )
    assert _dirty(service) == {floor_hour(started)}
    assert_rollup_matches(service)  # its hour is dirty: read raw
    refreshed = store.refresh_savings_rollup(NOW, STEP_S)
    assert (refreshed.dirty_hours, refreshed.rebuilt) == (1, False)
    assert _dirty(service) == set()
    assert_rollup_matches(service)
    # Energy arriving late for the finished job marks its hour again.
    store.add_energy_reports([_report(job, started + timedelta(hours=8), 7e6)])
    assert _dirty(service) == {floor_hour(started)}
    assert_rollup_matches(service)
    store.refresh_savings_rollup(NOW, STEP_S)
    assert_rollup_matches(service)
    # Retention deletes the events of finished jobs; the sums do not read them.
    before = _sums(service, True)
    assert store.prune_events(NOW + timedelta(days=1)) > 0
    assert _sums(service, True) == before
    assert_rollup_matches(service)


def test_new_hours_roll_and_a_new_step_rebuilds(service: GreenlightService) -> None:
    store: Any = service.ctx.store
    store.rebuild_savings_rollup(T0 + timedelta(hours=24), STEP_S)  # the first day only
    assert_rollup_matches(service)
    later = store.refresh_savings_rollup(NOW, STEP_S)
    assert (later.new_hours, later.rebuilt) == (72, False)
    assert_rollup_matches(service)
    other = store.refresh_savings_rollup(NOW, 60.0)  # counts made with another step: rebuilt
    assert other.rebuilt
    assert_rollup_matches(service)  # asked with STEP_S: read raw, still equal
    store.refresh_savings_rollup(NOW, STEP_S)
    assert_rollup_matches(service)


@pytest.mark.parametrize("group_by", [None, "kind", "group", "region"])
def test_report_from_the_rollup_equals_the_raw_report(
    service: GreenlightService, monkeypatch: pytest.MonkeyPatch, group_by: str | None
) -> None:
    monkeypatch.setattr(views, "EXACT_MAX_JOBS", 0)  # the SQL path
    store: Any = service.ctx.store
    store.use_rollup = False
    raw = service.savings_report(ADMIN, group_by=group_by)
    store.use_rollup = True
    rolled = service.savings_report(ADMIN, group_by=group_by)  # refreshes (builds) the rollup
    assert _rolled_rows(service) > 0
    close(rolled.total, raw.total)
    assert len(rolled.groups) == len(raw.groups)
    for a, b in zip(rolled.groups, raw.groups, strict=True):
        close(a, b)
    assert rolled.generated_at.tzinfo is UTC


def test_cli_db_rollup_builds_and_updates(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'greenlight.db'}"
    service = build_service(load_settings(database_url=database_url), clock=FakeClock(NOW))
    ran(service, 20, seed=4)
    built = ok(
        in_process("db", "rollup", "--rebuild", env={"GREENLIGHT_DATABASE_URL": database_url})
    )
    assert "savings rollup rebuilt" in built
    assert _rolled_rows(service) > 0
    again = ok(in_process("db", "rollup", env={"GREENLIGHT_DATABASE_URL": database_url}))
    assert "savings rollup updated: 0 new hours, 0 changed hours" in again
    assert_rollup_matches(service)

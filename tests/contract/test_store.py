"""One contract suite for SqlStore, run on a fresh SQLite file and a fresh PostgreSQL schema.

Every port method is exercised through the public API only, except where the test must look
under it (points deleted by a prune). Concurrency tests use real threads on the real database,
each thread with its own engine, as separate service replicas would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from scheduler.domain import (
    ApiToken,
    ConfigError,
    GreenlightError,
    InvalidTransition,
    Job,
    JobKind,
    JobNotFound,
    JobState,
    Policy,
    Region,
    Resources,
    Role,
    SeriesKind,
    Signal,
    Window,
)
from scheduler.domain.energy import EnergyConflict
from scheduler.domain.serve import ServeApp
from scheduler.store import SqlStore, create_store_engine
from scheduler.store.tables import forecast_points, metadata
from tests.fakes.store import (
    T0,
    make_event,
    make_job,
    make_plan,
    make_report,
    make_series,
    make_spec,
)

R = TypeVar("R")
CEST = timezone(timedelta(hours=2))


@pytest.fixture(scope="module")
def _pg_tables(pg_module_url: str) -> str:
    engine = create_store_engine(pg_module_url)
    metadata.create_all(engine)
    engine.dispose()
    return pg_module_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[SqlStore]:
    """An empty store: a new SQLite file, or the module's PostgreSQL schema truncated."""
    if request.param == "sqlite":
        engine = create_store_engine(sqlite_url)
        metadata.create_all(engine)
    else:
        engine = create_store_engine(request.getfixturevalue("_pg_tables"))
        names = ", ".join(t.name for t in metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    yield SqlStore(engine)
    engine.dispose()


def _race(store: SqlStore, workers: int, task: Callable[[SqlStore, int], R]) -> list[R]:
    """Run ``task`` in ``workers`` threads released together, each with its own engine on
    ``store``'s database, as separate replicas would."""
    url = store.engine.url.render_as_string(hide_password=False)
    barrier = threading.Barrier(workers)
    replicas = [SqlStore(create_store_engine(url)) for _ in range(workers)]

    def run(i: int) -> R:
        barrier.wait(timeout=30)
        return task(replicas[i], i)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run, range(workers)))
    finally:
        for replica in replicas:
            replica.close()


def _planned(store: SqlStore, job_id: str, start: datetime) -> Job:
    store.add_job(make_job(job_id), make_event(job_id))
    assert store.save_plan(job_id, make_plan(start), None)
    return store.get_job(job_id)


# --- jobs -----------------------------------------------------------------------------------


def test_job_round_trips_every_field_as_aware_utc(store: SqlStore) -> None:
    spec = make_spec(
        kind=JobKind.DEPLOYMENT,
        runtime_env={"working_dir": "/srv", "env_vars": {"SEED": "1"}, "pip": ["torch"]},
        resources=Resources(gpus=2, cpus=3.5, memory_mb=4096),
        deadline=datetime(2023, 3, 2, 12, tzinfo=CEST),
        allowed_regions=("eu-central", "eu-south"),
        interruptible=True,
        priority=3,
        max_retries=2,
        policy=Policy.CARBON_TIME,
        expected_power_w=450.0,
    )
    plan = make_plan(T0, region="eu-south", forecast_issued_at=T0, note="forced start")
    plan = replace(
        plan,
        windows=(
            Window(region="eu-south", start=T0, end=T0 + timedelta(hours=1)),
            Window(region="eu-south", start=T0 + timedelta(hours=3), end=T0 + timedelta(hours=4)),
        ),
    )
    job = make_job(
        "j1",
        spec=spec,
        created_at=T0.astimezone(CEST),
        state=JobState.RUNNING,
        attempt=2,
        plan=plan,
        region="eu-south",
        submission_id="j1-2",
        started_at=T0 + timedelta(minutes=5),
        message="hello",
    )
    store.add_job(job, make_event("j1"))

    got = store.get_job("j1")

    assert got == job
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.spec.deadline == datetime(2023, 3, 2, 10, tzinfo=UTC)
    assert got.plan is not None
    assert (got.plan.start, got.plan.end) == (T0, T0 + timedelta(hours=4))
    assert all(w.start.utcoffset() == timedelta(0) for w in got.plan.windows)


def test_add_job_stores_first_event_and_refuses_a_taken_id(store: SqlStore) -> None:
    store.add_job(make_job("j1"), make_event("j1", to_state=JobState.PENDING, reason="submit"))

    with pytest.raises(GreenlightError, match="already exists"):
        store.add_job(make_job("j1", spec=make_spec(name="other")), make_event("j1"))

    assert store.get_job("j1").spec.name == "train"
    assert [(e.reason, e.to_state) for e in store.events("j1")] == [("submit", JobState.PENDING)]


def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        store.add_job(make_job("j1", created_at=datetime(2023, 3, 1)), make_event("j1"))
    with pytest.raises(JobNotFound):
        store.get_job("j1")


def test_get_unknown_job_raises(store: SqlStore) -> None:
    with pytest.raises(JobNotFound, match="nope"):
        store.get_job("nope")


def test_list_jobs_filters_orders_newest_first_and_counts_before_paging(store: SqlStore) -> None:
    rows = [
        ("a", "acme", JobKind.TRAINING, JobState.PENDING),
        ("b", "acme", JobKind.DEPLOYMENT, JobState.RUNNING),
        ("c", "beta", JobKind.TRAINING, JobState.PENDING),
        ("d", "acme", JobKind.TRAINING, JobState.SUCCEEDED),
        ("e", "acme", JobKind.TRAINING, JobState.PENDING),
    ]
    for i, (job_id, tenant, kind, state) in enumerate(rows):
        job = make_job(
            job_id,
            created_at=T0 + timedelta(minutes=i),
            spec=make_spec(tenant=tenant, kind=kind),
            state=state,
        )
        store.add_job(job, make_event(job_id))

    def ids(jobs: list[Job]) -> list[str]:
        return [j.id for j in jobs]

    everything, total = store.list_jobs()
    assert (ids(everything), total) == (["e", "d", "c", "b", "a"], 5)
    pending, total = store.list_jobs(states={JobState.PENDING}, tenant="acme")
    assert (ids(pending), total) == (["e", "a"], 2)
    training, total = store.list_jobs(
        kind=JobKind.TRAINING, states=[JobState.PENDING, JobState.SUCCEEDED]
    )
    assert (ids(training), total) == (["e", "d", "c", "a"], 4)
    page, total = store.list_jobs(tenant="acme", limit=2, offset=1)
    assert (ids(page), total) == (["d", "b"], 4)
    beyond, total = store.list_jobs(limit=10, offset=10)
    assert (beyond, total) == ([], 5)
    assert store.list_jobs(states=[]) == ([], 0)


def test_count_by_state_reports_every_state(store: SqlStore) -> None:
    for job_id, state in [("a", JobState.PENDING), ("b", JobState.PENDING), ("c", JobState.FAILED)]:
        store.add_job(make_job(job_id, state=state), make_event(job_id))

    counts = store.count_by_state()

    assert counts == {**dict.fromkeys(JobState, 0), JobState.PENDING: 2, JobState.FAILED: 1}


def test_started_runs_read_a_few_columns_and_the_dispatch_marks(store: SqlStore) -> None:
    serve = ServeApp(import_path="app:deployment")
    for job_id, state, spec in [
        ("a", JobState.RUNNING, make_spec(resources=Resources(gpus=2))),
        (
            "b",
            JobState.DISPATCHED,
            make_spec(serve=serve, kind=JobKind.DEPLOYMENT, resources=Resources(gpus=0.25)),
        ),
        ("c", JobState.PLANNED, make_spec()),
    ]:
        store.add_job(
            make_job(
                job_id, state=state, spec=spec, region="eu-south", submission_id=f"s-{job_id}"
            ),
            make_event(job_id),
        )
    store.quarantine_job("a", "bad data", make_event("a", kind="quarantine"))

    runs = {r.job_id: r for r in store.started_runs([JobState.RUNNING, JobState.DISPATCHED])}

    assert set(runs) == {"a", "b"}
    a, b = runs["a"], runs["b"]
    assert (a.state, a.region, a.submission_id, a.serve) == (
        JobState.RUNNING,
        "eu-south",
        "s-a",
        False,
    )
    assert (b.state, b.serve) == (JobState.DISPATCHED, True)
    assert (a.gpus, b.gpus) == (2, 0.25)
    assert a.mark == store.dispatch_marks(["a"])["a"]
    assert a.mark.quarantine == "bad data"
    assert b.mark.quarantine is None


def test_get_jobs_reads_full_rows_of_the_ids_found(store: SqlStore) -> None:
    for job_id in ("a", "b", "c"):
        store.add_job(make_job(job_id), make_event(job_id))

    found = store.get_jobs(["c", "a", "missing"])

    assert found == {"a": store.get_job("a"), "c": store.get_job("c")}
    assert store.get_jobs([]) == {}


def test_count_by_state_of_some_states_reports_those_only(store: SqlStore) -> None:
    for job_id, state in [("a", JobState.PENDING), ("b", JobState.RUNNING), ("c", JobState.FAILED)]:
        store.add_job(make_job(job_id, state=state), make_event(job_id))

    counts = store.count_by_state([JobState.PENDING, JobState.PLANNED, JobState.FAILED])

    assert counts == {JobState.PENDING: 1, JobState.PLANNED: 0, JobState.FAILED: 1}


# --- transitions ----------------------------------------------------------------------------


def test_transitions_set_fields_and_append_events_with_real_states(store: SqlStore) -> None:
    store.add_job(make_job("j1"), make_event("j1"))
    t1, t2, t3 = (T0 + timedelta(minutes=m) for m in (1, 2, 3))

    dispatched = store.transition(
        "j1",
        JobState.DISPATCHED,
        make_event("j1", t1, reason="run now"),
        region="us-west",
        submission_id="j1-1",
    )
    running = store.transition("j1", JobState.RUNNING, make_event("j1", t2), started_at=t2)
    done = store.transition(
        "j1",
        JobState.SUCCEEDED,
        make_event("j1", t3),
        expected_from={JobState.RUNNING},
        finished_at=t3,
        exit_code=0,
        message="ok",
    )

    assert (dispatched.state, dispatched.region, dispatched.submission_id) == (
        JobState.DISPATCHED,
        "us-west",
        "j1-1",
    )
    assert (running.state, running.started_at, running.region) == (JobState.RUNNING, t2, "us-west")
    assert done == store.get_job("j1")
    assert (done.finished_at, done.exit_code, done.message, done.updated_at) == (t3, 0, "ok", t3)
    history = [(e.from_state, e.to_state) for e in store.events("j1")[1:]]
    assert history == [
        (JobState.PENDING, JobState.DISPATCHED),
        (JobState.DISPATCHED, JobState.RUNNING),
        (JobState.RUNNING, JobState.SUCCEEDED),
    ]


def test_refused_transitions_change_nothing(store: SqlStore) -> None:
    store.add_job(make_job("j1", state=JobState.SUCCEEDED), make_event("j1"))
    store.add_job(make_job("j2", state=JobState.PENDING), make_event("j2"))

    with pytest.raises(InvalidTransition, match="succeeded; it cannot become running"):
        store.transition("j1", JobState.RUNNING, make_event("j1"))
    with pytest.raises(InvalidTransition) as refused:
        store.transition(
            "j2", JobState.CANCELLED, make_event("j2"), expected_from={JobState.RUNNING}
        )
    with pytest.raises(JobNotFound):
        store.transition("nope", JobState.CANCELLED, make_event("nope"))

    assert (refused.value.current, refused.value.target) == ("pending", "cancelled")
    assert store.get_job("j1").state is JobState.SUCCEEDED
    assert store.get_job("j2").state is JobState.PENDING
    assert len(store.events("j1")) == len(store.events("j2")) == 1


def test_transition_can_clear_the_plan(store: SqlStore) -> None:
    _planned(store, "j1", T0)

    job = store.transition("j1", JobState.PENDING, make_event("j1"), clear_plan=True)

    assert job.plan is None
    assert store.get_job("j1").plan is None
    assert store.claim_due(T0 + timedelta(days=1), 10) == []


@pytest.mark.parametrize(
    "targets", [[JobState.DISPATCHED] * 6, [JobState.DISPATCHED, JobState.CANCELLED] * 3]
)
def test_racing_transitions_have_exactly_one_winner(
    store: SqlStore, targets: list[JobState]
) -> None:
    _planned(store, "j1", T0)

    def attempt(replica: SqlStore, i: int) -> str | None:
        try:
            replica.transition(
                "j1",
                targets[i],
                make_event("j1", reason=f"replica {i}"),
                expected_from={JobState.PLANNED},
                message=f"replica {i}",
            )
        except InvalidTransition:
            return None
        return f"replica {i}"

    winners = [w for w in _race(store, len(targets), attempt) if w is not None]

    assert len(winners) == 1
    job = store.get_job("j1")
    assert job.message == winners[0]
    assert [e.reason for e in store.events("j1") if e.from_state is JobState.PLANNED] == winners


# --- plans and claims ------------------------------------------------------------------------


def test_save_plan_only_while_plannable(store: SqlStore) -> None:
    store.add_job(make_job("j1"), make_event("j1"))
    first, second = make_plan(T0 + timedelta(hours=1)), make_plan(T0 + timedelta(hours=2))

    assert store.save_plan("j1", first, make_event("j1", reason="planned"))
    assert store.get_job("j1").plan == first
    assert store.save_plan("j1", second, None)
    assert store.get_job("j1").plan == second
    store.transition("j1", JobState.DISPATCHED, make_event("j1"))
    assert not store.save_plan("j1", first, make_event("j1", reason="late"))
    with pytest.raises(JobNotFound):
        store.save_plan("nope", first, None)

    job = store.get_job("j1")
    assert (job.state, job.plan) == (JobState.DISPATCHED, second)
    plan_events = [
        (e.reason, e.from_state, e.to_state)
        for e in store.events("j1")
        if e.reason in {"planned", "late"}
    ]
    assert plan_events == [("planned", JobState.PENDING, JobState.PLANNED)]


def test_claim_due_takes_only_due_planned_jobs_in_plan_order(store: SqlStore) -> None:
    _planned(store, "late", T0 + timedelta(minutes=30))
    _planned(store, "second", T0 + timedelta(minutes=20))
    _planned(store, "first", T0 + timedelta(minutes=10))
    store.add_job(make_job("unplanned"), make_event("unplanned"))
    now = T0 + timedelta(minutes=20)

    claimed = store.claim_due(now, limit=10)

    assert [j.id for j in claimed] == ["first", "second"]
    for job in claimed:
        assert job == store.get_job(job.id)
        assert (job.state, job.attempt, job.region, job.submission_id, job.updated_at) == (
            JobState.DISPATCHED,
            1,
            "eu-central",
            f"{job.id}-1",
            now,
        )
        last = store.events(job.id)[-1]
        assert (last.from_state, last.to_state, last.at) == (
            JobState.PLANNED,
            JobState.DISPATCHED,
            now,
        )
        assert last.expected_emissions_g == 12.5
    assert store.claim_due(now, limit=10) == []
    assert store.get_job("late").state is JobState.PLANNED
    assert store.get_job("unplanned").state is JobState.PENDING


def test_claim_due_respects_the_limit_and_increments_the_attempt(store: SqlStore) -> None:
    _planned(store, "a", T0)
    _planned(store, "b", T0 + timedelta(minutes=1))
    now = T0 + timedelta(hours=1)

    assert store.claim_due(now, limit=0) == []
    assert [j.id for j in store.claim_due(now, limit=1)] == ["a"]
    store.transition("a", JobState.RETRYING, make_event("a"))
    assert store.save_plan("a", make_plan(now, region="us-west"), None)
    retried = {j.id: j for j in store.claim_due(now, limit=5)}

    assert sorted(retried) == ["a", "b"]
    assert (retried["a"].attempt, retried["a"].submission_id, retried["a"].region) == (
        2,
        "a-2",
        "us-west",
    )
    assert (retried["b"].attempt, retried["b"].submission_id) == (1, "b-1")


def test_concurrent_claims_never_take_a_job_twice(store: SqlStore) -> None:
    job_ids = [f"j{i:02d}" for i in range(24)]
    for i, job_id in enumerate(job_ids):
        plan = make_plan(T0 + timedelta(seconds=i))
        store.add_job(make_job(job_id, state=JobState.PLANNED, plan=plan), make_event(job_id))
    now = T0 + timedelta(hours=1)

    def drain(replica: SqlStore, _: int) -> list[str]:
        taken: list[str] = []
        while batch := replica.claim_due(now, limit=3):
            taken.extend(j.id for j in batch)
        return taken

    per_replica = _race(store, 4, drain)

    everything = [job_id for taken in per_replica for job_id in taken]
    assert sorted(everything) == job_ids
    for job_id in job_ids:
        job = store.get_job(job_id)
        assert (job.state, job.attempt, job.submission_id) == (
            JobState.DISPATCHED,
            1,
            f"{job_id}-1",
        )
        claims = [e for e in store.events(job_id) if e.to_state is JobState.DISPATCHED]
        assert len(claims) == 1


# --- events ---------------------------------------------------------------------------------


def test_events_come_oldest_first_with_ties_in_insertion_order(store: SqlStore) -> None:
    store.add_job(make_job("j1"), make_event("j1", T0, reason="submit"))
    later, earlier = T0 + timedelta(minutes=5), T0 + timedelta(minutes=1)
    store.add_event(make_event("j1", later, kind="warning", reason="late-1"))
    store.add_event(
        make_event("j1", earlier, kind="plan", reason="early", expected_emissions_g=3.0)
    )
    store.add_event(make_event("j1", later, kind="warning", reason="late-2"))

    events = store.events("j1")

    assert [e.reason for e in events] == ["submit", "early", "late-1", "late-2"]
    assert events[1] == make_event(
        "j1", earlier, kind="plan", reason="early", expected_emissions_g=3.0, id=events[1].id
    )
    assert len({e.id for e in events}) == 4


def test_events_of_unknown_jobs_raise(store: SqlStore) -> None:
    with pytest.raises(JobNotFound):
        store.add_event(make_event("nope"))
    with pytest.raises(JobNotFound):
        store.events("nope")


# --- energy ---------------------------------------------------------------------------------


def test_energy_reports_are_idempotent_by_their_key(store: SqlStore) -> None:
    for job_id in ("j1", "j2"):
        store.add_job(make_job(job_id), make_event(job_id))
    t1, t2 = T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)
    first = [make_report("j1", t1), make_report("j1", T0), make_report("j2", T0, device="cpu")]

    assert store.add_energy_reports(first) == 3
    retried = [
        make_report("j1", T0),
        make_report("j1", t2),
        make_report("j1", t2),
        make_report("j1", T0, attempt=2),
    ]
    assert store.add_energy_reports(retried) == 2
    assert store.add_energy_reports([]) == 0

    stored = store.energy_reports()
    assert [(r.job_id, r.interval_start, r.attempt) for r in stored] == [
        ("j1", T0, 1),
        ("j1", T0, 2),
        ("j2", T0, 1),
        ("j1", t1, 1),
        ("j1", t2, 1),
    ]
    assert stored[0] == make_report("j1", T0)
    assert [r.device for r in store.energy_reports(["j2"])] == ["cpu"]
    assert store.energy_reports([]) == []


def test_conflicting_or_overlapping_energy_is_refused_and_stores_nothing(store: SqlStore) -> None:
    store.add_job(make_job("j1"), make_event("j1"))
    assert store.add_energy_reports([make_report("j1", T0)]) == 1  # T0 .. T0 + 10 s
    later = make_report("j1", T0 + timedelta(seconds=30))

    with pytest.raises(EnergyConflict, match="different report"):
        store.add_energy_reports([later, make_report("j1", T0, energy_j=9999.0)])
    with pytest.raises(EnergyConflict, match="overlaps"):
        store.add_energy_reports([later, make_report("j1", T0 + timedelta(seconds=5))])
    with pytest.raises(EnergyConflict, match="overlaps"):  # within one batch
        store.add_energy_reports(
            [later, make_report("j1", later.interval_start - timedelta(seconds=1))]
        )

    assert [r.interval_start for r in store.energy_reports()] == [T0]
    # Other devices and attempts are separate timelines; touching intervals do not overlap.
    assert (
        store.add_energy_reports(
            [
                make_report("j1", T0 + timedelta(seconds=5), device="cpu"),
                make_report("j1", T0 + timedelta(seconds=5), attempt=2),
                make_report("j1", T0 + timedelta(seconds=10)),
            ]
        )
        == 3
    )


def test_energy_for_an_unknown_job_stores_nothing(store: SqlStore) -> None:
    store.add_job(make_job("j1"), make_event("j1"))

    with pytest.raises(JobNotFound, match="ghost"):
        store.add_energy_reports([make_report("j1", T0), make_report("ghost", T0)])

    assert store.energy_reports() == []


# --- forecasts ------------------------------------------------------------------------------


def test_latest_forecast_as_of(store: SqlStore) -> None:
    t1 = T0 + timedelta(hours=1)
    old = make_series("DE", T0, [300.0, 310.0])
    new = make_series(
        "DE",
        t1,
        [200.0, 210.0, 220.0],
        resolution_s=900,
        signal=Signal.MARGINAL,
        provider="watttime",
    )
    actual = make_series("DE", T0, [305.0], kind=SeriesKind.ACTUAL)
    for series in (old, new, actual, make_series("FR", t1, [50.0])):
        store.append_forecast(series)

    assert store.latest_forecast("DE", T0 - timedelta(seconds=1)) is None
    assert store.latest_forecast("DE", T0 + timedelta(minutes=59)) == old
    assert store.latest_forecast("DE", t1) == new
    assert store.latest_forecast("DE", t1, SeriesKind.ACTUAL) == actual
    assert store.latest_forecast("PL", t1) is None


def test_latest_forecast_ties_go_to_the_last_stored(store: SqlStore) -> None:
    store.append_forecast(make_series("DE", T0, [300.0]))
    store.append_forecast(make_series("DE", T0, [100.0, 110.0]))
    store.append_forecast(make_series("DE", T0, []))

    assert store.latest_forecast("DE", T0) == make_series("DE", T0, [])


def test_actuals_merge_series_and_keep_the_point_covering_the_start(store: SqlStore) -> None:
    t1 = T0 + timedelta(hours=5)
    store.append_forecast(
        make_series("DE", T0, [100.0, 110.0, 120.0, 130.0], kind=SeriesKind.ACTUAL, provider="a")
    )
    store.append_forecast(
        make_series(
            "DE",
            t1,
            [220.0, 230.0, 240.0],
            start=T0 + timedelta(hours=2),
            kind=SeriesKind.ACTUAL,
            provider="b",
        )
    )
    store.append_forecast(make_series("DE", t1, [999.0] * 6))  # a forecast: never an actual

    merged = store.actuals("DE", T0 + timedelta(minutes=30), T0 + timedelta(minutes=210))

    assert merged is not None
    assert [(p.valid_at - T0, p.g_per_kwh) for p in merged.points] == [
        (timedelta(hours=0), 100.0),
        (timedelta(hours=1), 110.0),
        (timedelta(hours=2), 220.0),
        (timedelta(hours=3), 230.0),
    ]
    assert (merged.kind, merged.provider, merged.issued_at, merged.resolution_s) == (
        SeriesKind.ACTUAL,
        "b",
        t1,
        3600,
    )
    assert store.actuals("DE", T0 + timedelta(hours=8), T0 + timedelta(hours=9)) is None
    assert store.actuals("FR", T0, t1) is None


def test_forecasts_between_lists_forecasts_issued_in_range_oldest_first(store: SqlStore) -> None:
    issued = [T0 + timedelta(hours=h) for h in (2, 0, 1)]
    for i, at in enumerate(issued):
        store.append_forecast(make_series("DE", at, [float(i)]))
    store.append_forecast(make_series("DE", T0, [1.0], kind=SeriesKind.ACTUAL))
    store.append_forecast(make_series("FR", T0, [1.0]))

    found = store.forecasts_between("DE", T0, T0 + timedelta(hours=2))

    assert [(f.issued_at, f.points[0].g_per_kwh) for f in found] == [
        (T0, 1.0),
        (T0 + timedelta(hours=1), 2.0),
    ]
    assert store.forecasts_between("DE", T0 + timedelta(hours=3), T0 + timedelta(hours=4)) == []


def test_series_are_keyed_by_provider_and_zone(store: SqlStore) -> None:
    later = T0 + timedelta(hours=1)
    store.append_forecast(make_series("DE", T0, [100.0, 110.0], provider="replay"))
    store.append_forecast(make_series("DE", later, [500.0, 510.0], provider="electricitymaps"))
    for provider, value in (("replay", 100.0), ("electricitymaps", 500.0)):
        store.append_forecast(
            make_series("DE", later, [value], kind=SeriesKind.ACTUAL, provider=provider)
        )

    replay = store.latest_forecast("DE", later, provider="replay")
    assert replay is not None
    assert (replay.provider, replay.points[0].g_per_kwh) == ("replay", 100.0)
    latest_any = store.latest_forecast("DE", later)
    assert latest_any is not None
    assert latest_any.provider == "electricitymaps"
    assert store.latest_forecast("DE", later, provider="watttime") is None
    for provider, value in (("replay", 100.0), ("electricitymaps", 500.0)):
        actual = store.actuals("DE", later, later + timedelta(hours=1), provider=provider)
        assert actual is not None
        assert [p.g_per_kwh for p in actual.points] == [value]
        found = store.forecasts_between("DE", T0, later + timedelta(hours=1), provider=provider)
        assert {f.provider for f in found} == {provider}


def test_prune_deletes_old_series_and_their_points(store: SqlStore) -> None:
    cutoff = T0 + timedelta(hours=1)
    store.append_forecast(make_series("DE", T0, [1.0, 2.0]))
    store.append_forecast(make_series("DE", T0, [1.0], kind=SeriesKind.ACTUAL))
    kept = make_series("DE", cutoff, [3.0, 4.0, 5.0])
    store.append_forecast(kept)

    assert store.prune_forecasts(cutoff) == 2
    assert store.prune_forecasts(cutoff) == 0

    assert store.forecasts_between("DE", T0, T0 + timedelta(days=1)) == [kept]
    assert store.actuals("DE", T0, T0 + timedelta(days=1)) is None
    with store.engine.connect() as conn:
        remaining = conn.execute(sa.select(sa.func.count()).select_from(forecast_points))
        assert remaining.scalar_one() == 3


# --- tokens and regions ---------------------------------------------------------------------


def _token(token_id: str, tenant: str, minutes: int, **fields: Any) -> ApiToken:
    values: dict[str, Any] = {
        "id": token_id,
        "tenant": tenant,
        "role": Role.USER,
        "token_hash": f"hash-{token_id}",
        "created_at": T0 + timedelta(minutes=minutes),
    }
    return ApiToken(**{**values, **fields})


def test_tokens_round_trip_revoke_and_list(store: SqlStore) -> None:
    job_token = _token(
        "t1",
        "acme",
        2,
        role=Role.JOB,
        job_id="j1",
        name="worker",
        expires_at=T0 + timedelta(days=1),
    )
    for token in (job_token, _token("t2", "beta", 1), _token("t3", "acme", 0)):
        store.add_token(token)

    assert store.token_by_hash("hash-t1") == job_token
    assert store.token_by_hash("unknown") is None
    with pytest.raises(GreenlightError, match="already exists"):
        store.add_token(replace(_token("t9", "acme", 0), token_hash="hash-t1"))
    store.revoke_token("t1")
    store.revoke_token("unknown")

    assert store.token_by_hash("hash-t1") == replace(job_token, revoked=True)
    assert [t.id for t in store.list_tokens()] == ["t3", "t2", "t1"]
    assert [t.id for t in store.list_tokens("acme")] == ["t3", "t1"]


def test_sync_regions_makes_the_store_equal_to_the_configuration(store: SqlStore) -> None:
    de = Region(name="eu-central", grid_zone="DE", provider="replay", gpus=8, pue=1.15)
    es = Region(name="eu-south", grid_zone="ES", provider="replay", gpus=8)
    ca = Region(
        name="us-west",
        grid_zone="CAISO_NORTH",
        provider="watttime",
        gpus=4,
        ray_address="http://10.0.0.1:8265",
        node_label="gpu-west",
    )

    store.sync_regions([es, de])
    assert store.list_regions() == [de, es]
    store.sync_regions([replace(es, gpus=16), ca])
    assert store.list_regions() == [replace(es, gpus=16), ca]
    with pytest.raises(ValueError, match="unique"):
        store.sync_regions([de, de])
    assert store.list_regions() == [replace(es, gpus=16), ca]
    store.sync_regions([])
    assert store.list_regions() == []


# --- engine and health ----------------------------------------------------------------------


def test_ping(store: SqlStore, tmp_path: Path) -> None:
    store.ping()
    unreachable = SqlStore(create_store_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}"))
    with pytest.raises(GreenlightError, match="database unreachable"):
        unreachable.ping()


def test_sqlite_engine_uses_wal_and_foreign_keys(sqlite_url: str) -> None:
    engine = create_store_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
    engine.dispose()


def test_engine_urls_are_checked_and_postgres_gets_psycopg() -> None:
    assert create_store_engine("postgresql://u@localhost/db").dialect.driver == "psycopg"
    assert create_store_engine("postgres://u@localhost/db").dialect.driver == "psycopg"
    with pytest.raises(ConfigError, match="not supported"):
        create_store_engine("mysql://u@localhost/db")
    with pytest.raises(ConfigError, match="malformed"):
        create_store_engine("not a url")


def test_in_memory_sqlite_is_shared_between_threads() -> None:
    memory = SqlStore(create_store_engine("sqlite://"))
    metadata.create_all(memory.engine)
    memory.add_job(make_job("j1"), make_event("j1"))

    with ThreadPoolExecutor(max_workers=1) as pool:
        seen = pool.submit(memory.get_job, "j1").result()

    assert seen.id == "j1"

"""The savings report from SQL sums agrees with the per-job report (SQLite and PostgreSQL).

Jobs that ran at different hours in different regions, each with energy reports inside one
hour, are priced both ways on the same shipped traces: per job (``build_savings_report``) and
from the database's hourly sums (``build_aggregate_report``). Group filters apply to both.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

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
    Principal,
    Resources,
    Role,
)
from scheduler.reports.savings import GroupSavings
from scheduler.service import GreenlightService, views
from tests.fakes.clock import FakeClock

T0 = datetime(2023, 3, 1, 6, tzinfo=UTC)
ADMIN = Principal(tenant="ops", role=Role.ADMIN, token_id="admin")
REGIONS = ("eu-central", "eu-south", "us-west")


def ran(service: GreenlightService, n: int, seed: int) -> None:
    rng = random.Random(seed)
    new, reports = [], []
    for i in range(n):
        created = T0 + timedelta(hours=rng.randrange(0, 48))
        # Up to 8 h late: some start within one planning step, some miss their deadline
        # (submit + 6 h + 1 h); some ran at home, some elsewhere.
        started = created + timedelta(hours=rng.randrange(0, 9), seconds=rng.choice([0, 120]))
        spec = JobSpec(
            tenant=rng.choice(["acme", "globex"]),
            name=f"j{i}",
            kind=JobKind.TRAINING if i % 2 else JobKind.DEPLOYMENT,
            entrypoint="true",
            home_region=rng.choice(REGIONS),
            expected_duration_s=3600.0,
            max_delay_s=6 * 3600.0,
            resources=Resources(gpus=i % 3, cpus=float(1 + i % 4)),
            group_id="sweep" if i % 3 == 0 else None,
        )
        job = Job(
            id=f"j-{seed}-{i}",
            spec=spec,
            state=JobState.SUCCEEDED,
            created_at=created,
            updated_at=started + timedelta(hours=2),
            attempt=1,
            region=rng.choice(REGIONS),
            submission_id=f"j-{seed}-{i}-1",
            started_at=started,
            finished_at=started + timedelta(hours=2),
        )
        new.append(
            (
                job,
                JobEvent(
                    job_id=job.id,
                    at=created,
                    kind="state",
                    actor="test",
                    reason="ran",
                    to_state=JobState.SUCCEEDED,
                ),
            )
        )
        for hour in range(2):  # two reports, each inside one hour
            at = started + timedelta(hours=hour, minutes=10)
            reports.append(
                EnergyReport(
                    job_id=job.id,
                    attempt=1,
                    node="n",
                    device="gpu:0",
                    interval_start=at,
                    interval_end=at + timedelta(minutes=30),
                    energy_j=rng.uniform(1e5, 5e6),
                    method=MeterMethod.NVML_COUNTER if i % 4 else MeterMethod.ESTIMATE,
                )
            )
    service.ctx.store.add_jobs(new)
    service.ctx.store.add_energy_reports(reports)


JOB_FIGURES = (
    "embodied_g",
    "mean_delay_s",
    "deadline_misses",
    "moved_in_time_share",
    "moved_in_space_share",
)
ENERGY_FIGURES = ("energy_kwh", "measured_kwh", "estimated_kwh", "emissions_g", "baseline_g")


def close(a: GroupSavings, b: GroupSavings, fields: tuple[str, ...] = ENERGY_FIGURES) -> None:
    assert (a.key, a.jobs) == (b.key, b.jobs)
    for field in (*fields, *JOB_FIGURES):
        assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-9, abs=1e-6), field
    assert a.p95_delay_s is None  # the SQL path states no p95 (see scheduler.reports.aggregate)


@pytest.mark.parametrize("group_id", [None, "sweep"])
def test_sql_sums_agree_with_the_per_job_report(
    database_url: str, monkeypatch: pytest.MonkeyPatch, group_id: str | None
) -> None:
    service = build_service(
        load_settings(database_url=database_url), clock=FakeClock(T0 + timedelta(days=4))
    )
    ran(service, 60, seed=1)
    exact = service.savings_report(ADMIN, group_id=group_id)
    assert len(exact.jobs) == (60 if group_id is None else 20)
    monkeypatch.setattr(views, "EXACT_MAX_JOBS", 0)  # take the SQL path for the same data
    summed = service.savings_report(ADMIN, group_id=group_id)
    assert summed.jobs == ()
    close(summed.total, exact.total)
    for mine, theirs in ((summed.by_tenant, exact.by_tenant), (summed.by_region, exact.by_region)):
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs, strict=True):
            close(a, b)
    assert summed.total.saved_g != 0
    # Every figure is exercised: some misses, moves both ways, both meter methods.
    assert 0 < exact.total.deadline_misses < exact.total.jobs
    assert exact.total.moved_in_time_share is not None
    assert 0 < exact.total.moved_in_time_share < 1
    assert exact.total.moved_in_space_share is not None
    assert 0 < exact.total.moved_in_space_share < 1
    assert 0 < exact.total.estimated_kwh < exact.total.energy_kwh
    # filters: one tenant, one region
    acme = service.savings_report(ADMIN, tenant="acme")
    assert {g.key for g in acme.by_tenant} == {"acme"}
    west = service.savings_report(ADMIN, region="us-west")
    assert {g.key for g in west.by_region} == {"us-west"}


@pytest.mark.parametrize("group_by", ["tenant", "region", "kind", "group", "day"])
def test_sql_groupings_agree_with_the_per_job_report(
    database_url: str, monkeypatch: pytest.MonkeyPatch, group_by: str
) -> None:
    service = build_service(
        load_settings(database_url=database_url), clock=FakeClock(T0 + timedelta(days=4))
    )
    ran(service, 60, seed=2)
    exact = service.savings_report(ADMIN, group_by=group_by)
    monkeypatch.setattr(views, "EXACT_MAX_JOBS", 0)
    summed = service.savings_report(ADMIN, group_by=group_by)
    assert summed.group_by == exact.group_by == group_by
    assert len(exact.groups) > 1
    assert len(summed.groups) == len(exact.groups)
    # Per day the SQL path files energy under the day it was drawn, the per-job report under
    # the day the job started; the job figures are by start day in both.
    fields = () if group_by == "day" else ENERGY_FIGURES
    for a, b in zip(summed.groups, exact.groups, strict=True):
        close(a, b, fields)

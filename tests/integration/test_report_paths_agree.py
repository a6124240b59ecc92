"""Both savings report paths, per job and SQL-summed, on the same stored rows (SQLite and
PostgreSQL): a fractional-GPU deployment pair (the packing credit) and a deployment relocated
through the store's own move steps (two attempts in two regions), every figure by hand.

Stored actual intensity (g/kWh), one point per hour from T0 = 2023-03-01 06:00 UTC:

    zone  h0   h1   h2   h3+      region (PUE)
    DE    100  300  400  400      north 1.1
    ES    200  200  100  100      south 1.2

Jobs (submitted h0 unless said; the baseline is the same energy moved back to submit time,
in the home region):

    job  tenant  kind        GPUs  home   ran                          energy (kWh)
    t1   acme    training    1     north  south, h1-h2 (submitted h0)  1 @h1
    p1   globex  deployment  0.5   south  south, h0-h2                 0.2 @h0, 0.2 @h1
    p2   globex  deployment  0.25  south  south, h1-h2 (submitted h1)  0.1 @h1
    d1   globex  deployment  1     north  north h0-h2 (attempt 1),     1 @h0, 1 @h1 (att. 1)
                                          south from h2 (attempt 2)    1 @h2 (attempt 2)

    t1: 1 x 1.2 x 200 = 240 g; baseline 1 x 1.1 x 100 = 110 g
    p1: 0.4 x 1.2 x 200 = 96 g = baseline; p2: 0.1 x 1.2 x 200 = 24 g = baseline
    d1: 1 x 1.1 x 100 + 1 x 1.1 x 300 + 1 x 1.2 x 100 = 560 g (all of it at south's 1.2 x 100
        would be 360 g); baseline 1.1 x (100 + 300 + 400) = 880 g; one move, expected 12.5 g
    total: 920 g vs 1,110 g, saved 190 g; 4.5 kWh

Packing (idle GPU 50 W): h0-h1 p1 alone (1 GPU either way); h1-h2 p1 + p2 share one GPU
instead of two: 2 GPU-h packed vs 3, peaks 1 vs 2; 1 GPU-h x 50 W = 0.05 kWh x 1.2 x 200
= 12 g.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.bootstrap import build_service
from scheduler.cli.report_view import print_report
from scheduler.config import load_settings
from scheduler.domain import (
    EnergyReport,
    Forecast,
    IntensityPoint,
    Job,
    JobEvent,
    JobKind,
    JobSpec,
    JobState,
    MeterMethod,
    Principal,
    Resources,
    Role,
    SeriesKind,
)
from scheduler.domain.deployments import Move, MovePhase, completed
from scheduler.reports.render import report_to_dict, report_to_html, report_to_text
from scheduler.reports.savings import GroupSavings, SavingsReport
from scheduler.service import GreenlightService, views
from tests.fakes.clock import FakeClock

T0 = datetime(2023, 3, 1, 6, tzinfo=UTC)
HOUR = timedelta(hours=1)
J_PER_KWH = 3_600_000.0
ADMIN = Principal(tenant="ops", role=Role.ADMIN, token_id="admin")
CONFIG = """
[power]
idle_gpu_w = 50.0

[[regions]]
name = "north"
grid_zone = "DE"
gpus = 8
pue = 1.1

[[regions]]
name = "south"
grid_zone = "ES"
gpus = 8
pue = 1.2
"""
INTENSITY = {"DE": (100.0, 300.0, 400.0), "ES": (200.0, 200.0, 100.0)}


def _event(job_id: str, at: datetime, state: JobState = JobState.SUCCEEDED) -> JobEvent:
    return JobEvent(job_id=job_id, at=at, kind="state", actor="test", reason="ran", to_state=state)


def _report(job_id: str, hour: int, kwh: float, attempt: int = 1) -> EnergyReport:
    at = T0 + hour * HOUR
    return EnergyReport(
        job_id=job_id,
        attempt=attempt,
        node="n",
        device="gpu:0",
        interval_start=at,
        interval_end=at + HOUR,
        energy_j=kwh * J_PER_KWH,
        method=MeterMethod.NVML_COUNTER,
    )


def _job(
    job_id: str,
    tenant: str,
    kind: JobKind,
    gpus: float,
    home: str,
    ran: str,
    hours: tuple[int, int, int | None],
) -> Job:
    submitted, started, finished = hours
    spec = JobSpec(
        tenant=tenant,
        name=job_id,
        kind=kind,
        entrypoint="true",
        home_region=home,
        expected_duration_s=3600.0 if kind is JobKind.TRAINING else None,
        max_delay_s=6 * 3600.0,
        resources=Resources(gpus=gpus, cpus=1.0),
    )
    return Job(
        id=job_id,
        spec=spec,
        state=JobState.SUCCEEDED if finished is not None else JobState.RUNNING,
        created_at=T0 + submitted * HOUR,
        updated_at=T0 + started * HOUR,
        attempt=1,
        region=ran,
        submission_id=f"{job_id}-1",
        started_at=T0 + started * HOUR,
        finished_at=T0 + finished * HOUR if finished is not None else None,
    )


def _relocate(service: GreenlightService) -> None:
    """d1 moves north -> south at h2 through the store's own steps (as the relocator does)."""
    store = service.ctx.store
    at = T0 + 2 * HOUR
    move = Move(
        phase=MovePhase.STARTING,
        from_region="north",
        to_region="south",
        old_attempt=1,
        old_submission_id="d1-1",
        new_attempt=2,
        new_submission_id="d1-2",
        started_at=at,
        health_deadline=at + timedelta(minutes=10),
        expected_saving_g=12.5,
        expected_saving_pct=25.0,
        stay_g=50.0,
        move_g=37.5,
        horizon_s=86400.0,
    )
    assert store.start_move("d1", move, _event("d1", at, JobState.RELOCATING))
    submitted = dataclasses.replace(move, submitted=True)
    assert store.save_move("d1", move, submitted, [])
    assert store.set_endpoint("d1", 2, "http://10.0.0.2:8000", at)
    switched = dataclasses.replace(
        submitted, phase=MovePhase.DRAINING, switched_at=at, drain_until=at
    )
    assert store.save_move("d1", submitted, switched, [])
    done = completed(switched, at + timedelta(minutes=1))
    assert store.end_move("d1", switched, [], now=done.finished_at, relocation=done)


def _store_rows(service: GreenlightService, *, d1_finished: bool) -> None:
    store = service.ctx.store
    for zone, values in INTENSITY.items():
        hourly = list(values) + [values[-1]] * 21  # T0 .. T0 + 24 h
        store.append_forecast(
            Forecast(
                zone=zone,
                provider="replay",
                kind=SeriesKind.ACTUAL,
                issued_at=T0 + timedelta(days=1),
                resolution_s=3600,
                points=tuple(
                    IntensityPoint(valid_at=T0 + (h - 24) * HOUR, g_per_kwh=values[0])
                    for h in range(24)
                )
                + tuple(
                    IntensityPoint(valid_at=T0 + h * HOUR, g_per_kwh=v)
                    for h, v in enumerate(hourly)
                ),
            )
        )
    jobs = [
        _job("t1", "acme", JobKind.TRAINING, 1, "north", "south", (0, 1, 2)),
        _job("p1", "globex", JobKind.DEPLOYMENT, 0.5, "south", "south", (0, 0, 2)),
        _job("p2", "globex", JobKind.DEPLOYMENT, 0.25, "south", "south", (1, 1, 2)),
        _job("d1", "globex", JobKind.DEPLOYMENT, 1, "north", "north", (0, 0, None)),
    ]
    store.add_jobs([(j, _event(j.id, j.started_at or T0, j.state)) for j in jobs])
    store.set_endpoint("d1", 1, "http://10.0.0.1:8000", T0)
    _relocate(service)
    store.add_energy_reports(
        [
            _report("t1", 1, 1.0),
            _report("p1", 0, 0.2),
            _report("p1", 1, 0.2),
            _report("p2", 1, 0.1),
            _report("d1", 0, 1.0),
            _report("d1", 1, 1.0),
            _report("d1", 2, 1.0, attempt=2),
        ]
    )
    if d1_finished:  # a finished job: its hour goes into the rollup, its energy must not
        store.transition(
            "d1",
            JobState.CANCELLED,
            _event("d1", T0 + 3 * HOUR, JobState.CANCELLED),
            finished_at=T0 + 3 * HOUR,
        )


def _approx(value: float) -> object:
    return pytest.approx(value, rel=1e-9, abs=1e-9)


def _by_hand(report: SavingsReport) -> None:
    total = report.total
    assert total.jobs == 4
    assert total.energy_kwh == _approx(4.5)
    assert total.emissions_g == _approx(920.0)
    assert total.baseline_g == _approx(1110.0)
    assert total.saved_g == _approx(190.0)
    assert (total.relocations, total.relocation_expected_saving_g) == (1, _approx(12.5))
    tenants = {g.key: g for g in report.by_tenant}
    assert tenants["acme"].emissions_g == _approx(240.0)
    assert (tenants["acme"].relocations, tenants["acme"].relocation_expected_saving_g) == (0, None)
    # d1 is filed under the region it ends in (south), its first copy priced at north.
    assert tenants["globex"].emissions_g == _approx(96.0 + 24.0 + 560.0)
    assert tenants["globex"].baseline_g == _approx(96.0 + 24.0 + 880.0)
    assert tenants["globex"].relocations == 1
    assert [g.key for g in report.by_region] == ["south"]
    packing = report.packing
    assert packing is not None
    assert packing.deployments == 2
    assert (packing.gpu_h_packed, packing.gpu_h_unpacked) == (_approx(2.0), _approx(3.0))
    assert (packing.peak_gpus_packed, packing.peak_gpus_unpacked) == (1, 2)
    assert packing.energy_kwh == _approx(0.05)
    assert packing.emissions_g == _approx(12.0)


def _same(a: GroupSavings, b: GroupSavings) -> None:
    for field in (
        "key",
        "jobs",
        "energy_kwh",
        "measured_kwh",
        "estimated_kwh",
        "emissions_g",
        "baseline_g",
        "saved_g",
        "saved_pct",
        "embodied_g",
        "mean_delay_s",
        "deadline_misses",
        "moved_in_time_share",
        "moved_in_space_share",
        "relocations",
        "relocation_expected_saving_g",
    ):
        mine, theirs = getattr(a, field), getattr(b, field)
        if isinstance(theirs, float):
            assert mine == _approx(theirs), field
        else:
            assert mine == theirs, field


def test_the_cli_shows_moves_and_packing(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "greenlight.toml"
    config.write_text(CONFIG)
    service = build_service(
        load_settings(config, database_url=sqlite_url), clock=FakeClock(T0 + timedelta(days=1))
    )
    _store_rows(service, d1_finished=False)
    print_report(report_to_dict(service.savings_report(ADMIN)))
    out = capsys.readouterr().out
    assert "Relocations: 1 completed moves, expected to save 12.5 g when decided" in out
    assert "Packing: 2 shared-GPU deployments powered 2.0 GPU-h (peak 1) instead of 3.0" in out
    assert "12.0 g" in out  # the credit's grams


@pytest.mark.parametrize("d1_finished", [False, True], ids=["running", "finished"])
def test_both_report_paths_price_packing_and_moves_alike(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, d1_finished: bool
) -> None:
    config = tmp_path / "greenlight.toml"
    config.write_text(CONFIG)
    service = build_service(
        load_settings(config, database_url=database_url), clock=FakeClock(T0 + timedelta(days=1))
    )
    _store_rows(service, d1_finished=d1_finished)
    exact = service.savings_report(ADMIN, group_by="tenant")
    row = next(j for j in exact.jobs if j.job_id == "d1")
    assert (row.region, row.emissions_g, row.relocations) == ("south", _approx(560.0), 1)
    _by_hand(exact)
    monkeypatch.setattr(views, "EXACT_MAX_JOBS", 0)  # the SQL path over the same rows
    summed = service.savings_report(ADMIN, group_by="tenant")
    assert summed.jobs == ()
    _by_hand(summed)
    assert summed.packing == exact.packing
    for mine, theirs in (
        (summed.total, exact.total),
        *zip(summed.by_tenant, exact.by_tenant, strict=True),
        *zip(summed.by_region, exact.by_region, strict=True),
        *zip(summed.groups, exact.groups, strict=True),
    ):
        _same(mine, theirs)
    # The rollup (refreshed by every report) answers for the finished jobs' hours and still
    # leaves d1's energy to its per-copy sums: a second SQL report reads it and agrees.
    _by_hand(service.savings_report(ADMIN, group_by="tenant"))
    # Relocations in the human formats: per job, per group, in total.
    text = report_to_text(exact)
    assert "Relocations: 1 completed moves of deployments, expected to save 12.5 g" in text
    d1_line = next(line for line in text.splitlines() if line.startswith("d1 "))
    assert "1 (exp. 12.5 g)" in d1_line
    globex = next(line for line in text.splitlines() if line.startswith("globex "))
    assert "12.5 g" in globex
    assert "Relocations: 1" in report_to_text(summed)
    page = report_to_html(exact)
    assert (
        '<td class="num" title="completed moves (expected saving of them)">1 (exp. 12.5 g)' in page
    )
    assert '<th class="num">Relocations</th>' in page
    assert '<th class="num">Relocations</th>' in report_to_html(summed)

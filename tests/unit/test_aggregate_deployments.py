"""Deployments in the savings report over many jobs (``build_aggregate_report``), by hand: a
moved deployment's energy priced where each copy drew it but filed under its region, its moves
per group, and the packing credit from run bounds equal to the per-job report's."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from scheduler.domain import J_PER_KWH, Job, JobState
from scheduler.domain.savings import EnergyBucket, JobCount, RunBounds
from scheduler.reports.aggregate import build_aggregate_report
from scheduler.reports.packing_credit import runs_of_bounds, shared_runs
from scheduler.reports.render import report_to_csv, report_to_html, report_to_text
from scheduler.reports.savings import group_savings
from tests.unit.test_packing_credit import deployment
from tests.unit.test_reports import HOUR, T0, build, energy, region, series

NOW = T0 + timedelta(days=2)
REGIONS = {"home": region("home", "H"), "a": region("a", "A", pue=1.2), "b": region("b", "B")}
ACTUALS = {
    "H": series("H", T0, [500.0] * 4),
    "A": series("A", T0, [400.0] * 4),
    "B": series("B", T0, [100.0] * 4),
}


def _bucket(
    kwh: float, *, hour: int, baseline: bool = False, drawn_in: str | None = None
) -> EnergyBucket:
    return EnergyBucket(
        tenant="acme",
        region="b",
        home_region="home",
        hour=T0 + hour * HOUR,
        energy_j=kwh * J_PER_KWH,
        estimated_j=0.0,
        baseline=baseline,
        drawn_in=drawn_in,
    )


def test_a_moved_deployments_copies_are_priced_where_they_drew_and_filed_where_it_is() -> None:
    # 2 kWh at hour 0 drawn in a (1.2 x 400) by the first copy, 3 kWh at hour 2 in b (100):
    # 960 + 300 = 1,260 g; baseline 5 kWh at home (500) = 2,500 g. One move, 12.5 g expected.
    buckets = [
        _bucket(2.0, hour=0, drawn_in="a"),
        _bucket(3.0, hour=2),
        _bucket(2.0, hour=0, baseline=True),
        _bucket(3.0, hour=2, baseline=True),
    ]
    counts = [
        JobCount(tenant="acme", region="b", day=T0, jobs=1),
        JobCount(
            tenant="acme",
            region="b",
            day=T0,
            jobs=0,
            relocations=1,
            relocation_expected_saving_g=12.5,
        ),
    ]
    report = build_aggregate_report(
        buckets=buckets, counts=counts, regions=REGIONS, actuals=ACTUALS, forecasts={}, now=NOW
    )
    assert report.total.emissions_g == pytest.approx(1260.0)
    assert report.total.baseline_g == pytest.approx(2500.0)
    assert [g.key for g in report.by_region] == ["b"]
    assert report.total.jobs == 1
    assert (report.total.relocations, report.total.relocation_expected_saving_g) == (1, 12.5)
    assert report.packing is None
    assert "Relocations: 1 completed moves of deployments, expected to save 12.5 g" in (
        report_to_text(report)
    )
    assert "1 (exp. 12.5 g)" in report_to_html(report)  # the total card


def _bounds(job: Job, reports_kwh: list[tuple[int, int]]) -> RunBounds:
    assert job.started_at is not None
    return RunBounds(
        job_id=job.id,
        region=job.region or "home",
        home_region=job.spec.home_region,
        gpu_share=float(job.spec.resources.gpus),
        terminal=job.state is not JobState.RUNNING,
        started_at=job.started_at,
        finished_at=job.finished_at,
        first_interval_start=T0 + reports_kwh[0][0] * HOUR,
        last_interval_end=T0 + reports_kwh[-1][1] * HOUR,
    )


def test_run_bounds_make_the_per_job_reports_runs_and_credit() -> None:
    # a finished without a recorded finish (its last interval ends it); b starts with an
    # interval before its recorded start; c still runs (to now).
    a = dataclasses.replace(deployment("a", 0.5, T0, None), state=JobState.SUCCEEDED)
    b = deployment("b", 0.5, T0 + HOUR, T0 + 3 * HOUR)
    c = deployment("c", 0.25, T0 + HOUR, None)
    spans = {"a": [(0, 1), (1, 2)], "b": [(0, 1)], "c": [(1, 2)]}
    jobs = [a, b, c]
    reports = [energy(j, T0 + s * HOUR, T0 + e * HOUR, 0.1) for j in spans for s, e in spans[j]]
    per_job = build(jobs, reports, regions=REGIONS, actuals=list(ACTUALS.values()), idle_gpu_w=60.0)
    bounds = [_bounds(j, spans[j.id]) for j in jobs]
    expected = sorted(shared_runs(jobs, per_job.jobs, NOW), key=lambda r: r.job_id)
    assert sorted(runs_of_bounds(bounds, NOW), key=lambda r: r.job_id) == expected
    assert [r.job_id for r in runs_of_bounds(bounds, NOW, start=T0 + HOUR / 2)] == ["c"]
    summed = build_aggregate_report(
        buckets=[],
        counts=[],
        regions=REGIONS,
        actuals=ACTUALS,
        forecasts={},
        now=NOW,
        shared=bounds,
        idle_gpu_w=60.0,
    )
    assert summed.packing == per_job.packing
    assert summed.packing is not None
    assert summed.packing.gpu_h_saved > 0
    # A region nobody configured is not priced by the per-job report: no run of it either.
    stray = dataclasses.replace(bounds[0], region="mars")
    alone = build_aggregate_report(
        buckets=[],
        counts=[],
        regions=REGIONS,
        actuals=ACTUALS,
        forecasts={},
        now=NOW,
        shared=[stray],
        idle_gpu_w=60.0,
    )
    assert alone.packing is None


def test_a_groups_moves_sum_its_jobs_and_the_csv_total_row_carries_them() -> None:
    report = build([], [], regions=REGIONS)
    row = dataclasses.replace(
        build_aggregate_report(
            buckets=[], counts=[], regions=REGIONS, actuals={}, forecasts={}, now=NOW
        ).total,
        relocations=2,
        relocation_expected_saving_g=7.5,
    )
    report = dataclasses.replace(report, total=row)
    header, *_, total = (line.split(",") for line in report_to_csv(report).splitlines())
    cells = dict(zip(header, total, strict=True))
    assert (cells["relocations"], cells["relocation_expected_saving_g"]) == ("2", "7.5")
    assert group_savings("none", []).relocation_expected_saving_g is None

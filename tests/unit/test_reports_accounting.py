"""Accounting cases computed by hand: intensity changing mid-run, a missing actual priced on
the forecast, PUE, embodied emissions, delay, deadline misses and moves in time and space."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from scheduler.domain import Job, JobKind, JobSpec, JobState, MeterMethod, Resources, SeriesKind
from scheduler.reports import report_to_html, report_to_text
from scheduler.reports.savings import SavingsReport, p95
from scheduler.reports.sci import CPU_CORE_EMBODIED_G_PER_HOUR, GPU_EMBODIED_G_PER_HOUR
from tests.unit.test_reports import HOUR, T0, build, energy, region, series

# BLOOM paper defaults (sci.py): 150 kg per GPU, 2,500 kg per 64-core node, 6 years at 85 %.
IN_USE_H = 6 * 8760 * 0.85
GPU_G_PER_H = 150_000 / IN_USE_H  # 3.3575 g per GPU-hour
CORE_G_PER_H = 2_500_000 / 64 / IN_USE_H  # 0.8743 g per core-hour

REGIONS = {"home": region("home", "H"), "green": region("green", "G", pue=1.1)}


def job(
    job_id: str,
    *,
    started: datetime,
    finished: datetime,
    ran_in: str,
    gpus: int,
    cpus: float,
    deadline: datetime | None = None,
    kind: JobKind = JobKind.TRAINING,
) -> Job:
    spec = JobSpec(
        tenant="acme",
        name=job_id,
        kind=kind,
        entrypoint="true",
        home_region="home",
        resources=Resources(gpus=gpus, cpus=cpus),
        expected_duration_s=3600.0,
        deadline=deadline,
    )
    return Job(
        id=job_id,
        spec=spec,
        state=JobState.SUCCEEDED,
        created_at=T0,
        updated_at=finished,
        attempt=1,
        region=ran_in,
        started_at=started,
        finished_at=finished,
    )


def two_jobs(**kwargs: object) -> SavingsReport:
    shifted = job(
        "a",
        started=T0 + 2 * HOUR,
        finished=T0 + 3.5 * HOUR,
        ran_in="green",
        gpus=2,
        cpus=4,
        deadline=T0 + 3 * HOUR,
    )
    prompt = job(
        "b",
        started=T0 + timedelta(seconds=60),
        finished=T0 + HOUR,
        ran_in="home",
        gpus=0,
        cpus=1,
        kind=JobKind.DEPLOYMENT,
    )
    return build(
        [shifted, prompt],
        [
            energy("a", T0 + 2 * HOUR, T0 + 3.5 * HOUR, 1.5),
            energy(
                "b",
                T0 + timedelta(seconds=60),
                T0 + HOUR,
                0.1,
                method=MeterMethod.ESTIMATE,
            ),
        ],
        regions=REGIONS,
        # G has actuals for hours 0-2 only: hour 3 is priced on its forecast.
        actuals=[series("H", T0, [400.0, 400.0]), series("G", T0, [500.0, 500.0, 100.0])],
        forecasts=[series("G", T0, [300.0] * 5, kind=SeriesKind.FORECAST)],
        **kwargs,
    )


def test_sci_defaults_are_the_documented_figures() -> None:
    assert pytest.approx(3.3575, abs=1e-4) == GPU_G_PER_H
    assert pytest.approx(GPU_G_PER_H) == GPU_EMBODIED_G_PER_HOUR
    assert pytest.approx(CORE_G_PER_H) == CPU_CORE_EMBODIED_G_PER_HOUR


def test_a_shifted_job_by_hand() -> None:
    report = two_jobs()
    a = next(r for r in report.jobs if r.job_id == "a")
    # 1 kWh in hour 2 at 100 g/kWh (actual) + 0.5 kWh in hour 3 at 300 g/kWh (forecast),
    # x PUE 1.1 of the region it ran in.
    assert a.emissions_g == pytest.approx(1.1 * (1.0 * 100 + 0.5 * 300))  # 275 g
    # Started at submit (T0) at home: 1.5 kWh at 400 g/kWh, PUE 1.0.
    assert a.baseline_g == pytest.approx(600.0)
    assert a.saved_g == pytest.approx(325.0)
    assert a.intensity_source == "forecast"
    # 1.5 h x (2 GPUs x 3.3575 + 4 cores x 0.8743) g/h
    assert a.embodied_g == pytest.approx(1.5 * (2 * GPU_G_PER_H + 4 * CORE_G_PER_H))
    assert a.embodied_g == pytest.approx(15.32, abs=0.01)
    assert a.delay_s == 7200.0
    assert a.deadline_missed  # finished 3h30 after submit, deadline 3h
    assert a.moved_in_time
    assert a.moved_in_space


def test_group_figures_by_hand() -> None:
    total = two_jobs().total
    assert total.jobs == 2
    assert total.measured_kwh == pytest.approx(1.5)
    assert total.estimated_kwh == pytest.approx(0.1)
    assert total.energy_kwh == pytest.approx(1.6)
    # b: 0.1 kWh at 400 g/kWh both ways (its 60 s delay stays inside hour 0).
    assert total.emissions_g == pytest.approx(275.0 + 40.0)
    assert total.baseline_g == pytest.approx(600.0 + 40.0)
    assert total.saved_pct == pytest.approx(100 * 325 / 640)
    b_embodied = 3540 / 3600 * CORE_G_PER_H  # one core from 00:01 to 01:00
    assert total.embodied_g == pytest.approx(
        1.5 * (2 * GPU_G_PER_H + 4 * CORE_G_PER_H) + b_embodied
    )
    assert total.mean_delay_s == pytest.approx((7200 + 60) / 2)
    assert total.p95_delay_s == 7200.0
    assert total.deadline_misses == 1  # b has no deadline (no max_delay_s): never missed
    assert total.moved_in_time_share == 0.5  # 60 s is within one 300 s planning step
    assert total.moved_in_space_share == 0.5


def test_group_by_kind_and_refusing_unknown_groupings() -> None:
    report = two_jobs(group_by="kind")
    assert [(g.key, g.jobs) for g in report.groups] == [("deployment", 1), ("training", 1)]
    with pytest.raises(ValueError, match="group_by must be one of tenant, region, kind"):
        two_jobs(group_by="colour")


def test_p95_is_nearest_rank() -> None:
    assert p95([]) is None
    assert p95([5.0]) == 5.0
    assert p95([float(v) for v in range(20, 0, -1)]) == 19.0  # rank ceil(0.95 x 20) = 19
    assert p95([float(v) for v in range(1, 101)]) == 95.0


def test_text_and_html_show_the_accounting_per_group() -> None:
    report = two_jobs(group_by="kind")
    text = report_to_text(report)
    assert "Accounting by kind" in text
    deployment = next(line for line in text.splitlines() if line.startswith("deployment "))
    # 1 job, 0 kWh measured, 0.1 kWh estimated, 40 g, 60 s delay, no miss, not moved.
    assert deployment.split()[1:4] == ["1", "0.000000", "0.100000"]
    assert "40.0 g" in deployment
    assert "60 s" in deployment
    assert deployment.split()[-3:] == ["0", "0%", "0%"]
    total = next(line for line in text.splitlines()[::-1] if line.startswith("total "))
    assert total.split()[-3:] == ["1", "50%", "50%"]
    assert "1.0 h" in total  # mean delay 3,630 s
    page = report_to_html(report)
    assert "<h2>Accounting by kind</h2>" in page
    assert '<td class="num">50%</td>' in page

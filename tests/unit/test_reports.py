"""The savings report's arithmetic, checked by hand on small cases and by hypothesis on many."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.domain import (
    J_PER_KWH,
    EnergyReport,
    Forecast,
    IntensityPoint,
    Job,
    JobKind,
    JobSpec,
    JobState,
    MeterMethod,
    Region,
    SeriesKind,
)
from scheduler.reports import SavingsReport, build_savings_report
from scheduler.reports.savings import GroupSavings

T0 = datetime(2024, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def series(
    zone: str,
    start: datetime,
    values_g_per_kwh: Sequence[float],
    *,
    resolution_s: int = 3600,
    step_s: int | None = None,
    kind: SeriesKind = SeriesKind.ACTUAL,
) -> Forecast:
    step = timedelta(seconds=step_s or resolution_s)
    return Forecast(
        zone=zone,
        provider="test",
        kind=kind,
        issued_at=start,
        resolution_s=resolution_s,
        points=tuple(
            IntensityPoint(valid_at=start + i * step, g_per_kwh=v)
            for i, v in enumerate(values_g_per_kwh)
        ),
    )


def region(name: str, zone: str, pue: float = 1.0) -> Region:
    return Region(name=name, grid_zone=zone, provider="test", gpus=8, pue=pue)


def make_job(
    job_id: str,
    *,
    created_at: datetime = T0,
    started_at: datetime | None = T0,
    finished_at: datetime | None = None,
    state: JobState = JobState.SUCCEEDED,
    tenant: str = "acme",
    home: str = "home",
    ran_in: str | None = None,
) -> Job:
    spec = JobSpec(
        tenant=tenant,
        name=f"train-{job_id}",
        kind=JobKind.TRAINING,
        entrypoint="python train.py",
        home_region=home,
        expected_duration_s=3600.0,
    )
    return Job(
        id=job_id,
        spec=spec,
        state=state,
        created_at=created_at,
        updated_at=created_at,
        attempt=1,
        region=ran_in or home,
        started_at=started_at,
        finished_at=finished_at,
    )


def energy(
    job_id: str,
    start: datetime,
    end: datetime,
    energy_kwh: float,
    *,
    attempt: int = 1,
    device: str = "gpu:0",
    method: MeterMethod = MeterMethod.NVML_COUNTER,
) -> EnergyReport:
    return EnergyReport(
        job_id=job_id,
        attempt=attempt,
        node="node-1",
        device=device,
        interval_start=start,
        interval_end=end,
        energy_j=energy_kwh * J_PER_KWH,
        method=method,
    )


HOME = {"home": region("home", "H")}


def build(
    jobs: Sequence[Job],
    reports: Sequence[EnergyReport],
    *,
    regions: dict[str, Region] | None = None,
    actuals: Sequence[Forecast] = (),
    forecasts: Sequence[Forecast] = (),
    **kwargs: object,
) -> SavingsReport:
    return build_savings_report(
        jobs=jobs,
        energy_reports=reports,
        regions=regions if regions is not None else HOME,
        actuals={s.zone: s for s in actuals},
        forecasts={s.zone: s for s in forecasts},
        now=T0 + timedelta(days=2),
        **kwargs,  # type: ignore[arg-type]
    )


def test_flat_kwh_over_two_hours_is_priced_on_each_hours_intensity() -> None:
    report = build(
        [make_job("j1")],
        [energy("j1", T0, T0 + 2 * HOUR, 1.0)],
        actuals=[series("H", T0, [100.0, 300.0])],
    )
    (row,) = report.jobs
    # 0.5 kWh at 100 g/kWh + 0.5 kWh at 300 g/kWh
    assert row.energy_kwh == pytest.approx(1.0)
    assert row.emissions_g == pytest.approx(200.0)
    assert row.baseline_g == pytest.approx(200.0)  # started at submit, at home: nothing saved
    assert row.saved_g == pytest.approx(0.0)
    assert row.saved_pct == pytest.approx(0.0)
    assert row.delay_s == 0.0
    assert row.intensity_source == "actual"
    assert not row.energy_estimated


def test_pue_of_the_run_region_and_of_the_home_region_apply() -> None:
    regions = {"home": region("home", "H", pue=1.2), "dc": region("dc", "H", pue=1.5)}
    report = build(
        [make_job("j1", ran_in="dc")],
        [energy("j1", T0, T0 + 2 * HOUR, 1.0)],
        regions=regions,
        actuals=[series("H", T0, [100.0, 300.0])],
    )
    (row,) = report.jobs
    assert row.emissions_g == pytest.approx(300.0)  # 200 g x 1.5
    assert row.baseline_g == pytest.approx(240.0)  # 200 g x 1.2
    assert row.saved_g == pytest.approx(-60.0)
    assert row.saved_pct == pytest.approx(-25.0)


def test_baseline_starts_the_same_profile_at_submit_time_in_the_home_zone() -> None:
    regions = {"home": region("home", "H"), "green": region("green", "G")}
    job = make_job("j1", started_at=T0 + 2 * HOUR, ran_in="green")
    report = build(
        [job],
        [energy("j1", T0 + 2 * HOUR, T0 + 3 * HOUR, 1.0)],
        regions=regions,
        actuals=[series("H", T0, [400.0, 200.0, 900.0]), series("G", T0, [500.0, 500.0, 50.0])],
    )
    (row,) = report.jobs
    assert row.emissions_g == pytest.approx(50.0)  # green's third hour
    assert row.baseline_g == pytest.approx(400.0)  # home's first hour, not its third
    assert row.saved_g == pytest.approx(350.0)
    assert row.saved_pct == pytest.approx(87.5)
    assert row.delay_s == 7200.0
    assert (row.region, row.home_region) == ("green", "home")


def test_a_shift_off_the_slot_grid_splits_energy_across_slots() -> None:
    job = make_job("j1", started_at=T0 + timedelta(minutes=30))
    report = build(
        [job],
        [energy("j1", T0 + timedelta(minutes=30), T0 + timedelta(minutes=90), 1.0)],
        actuals=[series("H", T0, [100.0, 300.0])],
    )
    (row,) = report.jobs
    assert row.emissions_g == pytest.approx(200.0)  # half in each hour
    assert row.baseline_g == pytest.approx(100.0)  # all in the first hour
    assert row.saved_pct == pytest.approx(-100.0)
    assert row.delay_s == 1800.0


def test_a_point_holds_only_until_the_next_one_begins() -> None:
    # Hourly resolution but a point every 30 minutes: overlaps must not count twice.
    report = build(
        [make_job("j1")],
        [energy("j1", T0, T0 + timedelta(minutes=90), 1.0)],
        actuals=[series("H", T0, [100.0, 300.0], resolution_s=3600, step_s=1800)],
    )
    assert report.jobs[0].emissions_g == pytest.approx(100.0 / 3 + 300.0 * 2 / 3)
    assert report.jobs[0].intensity_source == "actual"


def test_forecast_prices_what_actuals_miss_and_is_flagged() -> None:
    report = build(
        [make_job("j1")],
        [energy("j1", T0, T0 + 2 * HOUR, 1.0)],
        actuals=[series("H", T0, [100.0])],
        forecasts=[series("H", T0, [999.0, 300.0], kind=SeriesKind.FORECAST)],
    )
    (row,) = report.jobs
    assert row.emissions_g == pytest.approx(200.0)  # actual 100 wins over forecast 999
    assert row.intensity_source == "forecast"


def test_baseline_on_forecast_only_flags_the_job() -> None:
    regions = {"home": region("home", "H"), "green": region("green", "G")}
    report = build(
        [make_job("j1", ran_in="green")],
        [energy("j1", T0, T0 + HOUR, 1.0)],
        regions=regions,
        actuals=[series("G", T0, [50.0])],
        forecasts=[series("H", T0, [250.0], kind=SeriesKind.FORECAST)],
    )
    (row,) = report.jobs
    assert row.emissions_g == pytest.approx(50.0)
    assert row.baseline_g == pytest.approx(250.0)
    assert row.intensity_source == "forecast"


def test_no_data_at_all_for_part_of_a_run_uses_the_last_known_value_flagged() -> None:
    report = build(
        [make_job("j1")],
        [energy("j1", T0, T0 + 2 * HOUR, 1.0)],
        actuals=[series("H", T0, [100.0])],
    )
    (row,) = report.jobs
    assert row.emissions_g == pytest.approx(100.0)
    assert row.intensity_source == "extrapolated"


def test_a_zone_without_any_data_or_an_unknown_region_is_skipped_not_zero() -> None:
    jobs = [make_job("j1"), make_job("j2", home="gone")]
    reports = [energy("j1", T0, T0 + HOUR, 1.0), energy("j2", T0, T0 + HOUR, 1.0)]
    report = build(jobs, reports)
    assert report.jobs == ()
    assert {s.job_id for s in report.skipped} == {"j1", "j2"}
    assert report.total.jobs == 0
    assert any("'H'" in s.reason for s in report.skipped)
    assert any("'gone'" in s.reason for s in report.skipped)


def test_every_attempt_and_device_counts_and_repeated_reports_count_once() -> None:
    reports = [
        energy("j1", T0, T0 + HOUR, 0.5, attempt=1),
        energy("j1", T0, T0 + HOUR, 0.5, attempt=1),  # a retried POST of the same report
        energy("j1", T0 + HOUR, T0 + 2 * HOUR, 0.25, attempt=2, device="gpu:0"),
        energy("j1", T0 + HOUR, T0 + 2 * HOUR, 0.25, attempt=2, device="cpu:package-0"),
    ]
    report = build([make_job("j1")], reports, actuals=[series("H", T0, [100.0, 300.0])])
    (row,) = report.jobs
    assert row.energy_kwh == pytest.approx(1.0)
    assert row.emissions_g == pytest.approx(0.5 * 100 + 0.5 * 300)


def test_zero_length_report_is_priced_at_its_instant() -> None:
    report = build(
        [make_job("j1")],
        [energy("j1", T0 + 90 * timedelta(minutes=1), T0 + 90 * timedelta(minutes=1), 0.1)],
        actuals=[series("H", T0, [100.0, 300.0])],
    )
    assert report.jobs[0].emissions_g == pytest.approx(30.0)


def test_only_started_jobs_with_energy_count() -> None:
    jobs = [
        make_job("done"),
        make_job("running", state=JobState.RUNNING),
        make_job("cancelled", state=JobState.CANCELLED, finished_at=T0 + HOUR),
        make_job("pending", state=JobState.PENDING, started_at=None),
        make_job("no-energy"),
    ]
    reports = [energy(j, T0, T0 + HOUR, 1.0) for j in ("done", "running", "cancelled", "pending")]
    report = build(jobs, reports, actuals=[series("H", T0, [100.0])])
    by_id = {r.job_id: r for r in report.jobs}
    assert set(by_id) == {"done", "running", "cancelled"}
    assert by_id["running"].finished_at is None
    assert by_id["cancelled"].finished_at == T0 + HOUR
    assert by_id["done"].finished_at == T0 + HOUR  # no recorded end: the last report's end


def test_start_falls_back_to_the_first_report_and_estimates_are_flagged() -> None:
    job = make_job("j1", created_at=T0, started_at=None)
    reports = [energy("j1", T0 + HOUR, T0 + 2 * HOUR, 1.0, method=MeterMethod.ESTIMATE)]
    report = build([job], reports, actuals=[series("H", T0, [100.0, 300.0])])
    (row,) = report.jobs
    assert row.started_at == T0 + HOUR
    assert row.delay_s == 3600.0
    assert row.energy_estimated
    assert row.baseline_g == pytest.approx(100.0)


def test_start_and_end_filter_on_job_start_end_exclusive() -> None:
    jobs = [make_job(f"j{h}", started_at=T0 + h * HOUR) for h in range(4)]
    reports = [energy(f"j{h}", T0 + h * HOUR, T0 + (h + 1) * HOUR, 1.0) for h in range(4)]
    report = build(
        jobs,
        reports,
        actuals=[series("H", T0, [100.0] * 5)],
        start=T0 + HOUR,
        end=T0 + 3 * HOUR,
    )
    assert [r.job_id for r in report.jobs] == ["j1", "j2"]
    assert (report.start, report.end) == (T0 + HOUR, T0 + 3 * HOUR)


def _grouping_case(period: str) -> SavingsReport:
    regions = {"home": region("home", "H"), "green": region("green", "G", pue=1.1)}
    starts = [T0, T0 + timedelta(days=1), T0 + timedelta(days=31)]
    jobs, reports = [], []
    for i, (tenant, ran_in) in enumerate([("a", "home"), ("b", "green"), ("a", "green")]):
        for j, start in enumerate(starts):
            job_id = f"{tenant}-{i}-{j}"
            jobs.append(make_job(job_id, tenant=tenant, ran_in=ran_in, started_at=start))
            reports.append(energy(job_id, start, start + HOUR, 0.5 + i + j))
    hours = 24 * 40
    actuals = [
        series("H", T0, [300.0 + (h % 7) for h in range(hours)]),
        series("G", T0, [80.0 + (h % 5) for h in range(hours)]),
    ]
    return build(jobs, reports, regions=regions, actuals=actuals, period=period)


def test_grouping_by_tenant_region_and_period_adds_up() -> None:
    report = _grouping_case("day")
    assert [g.key for g in report.by_tenant] == ["a", "b"]
    assert [g.key for g in report.by_region] == ["green", "home"]
    assert [g.key for g in report.by_period] == ["2024-05-01", "2024-05-02", "2024-06-01"]
    assert [g.jobs for g in report.by_period] == [3, 3, 3]
    assert report.total.jobs == 9
    assert report.total.energy_kwh == pytest.approx(
        sum(0.5 + i + j for i in range(3) for j in range(3))
    )
    for groups in (report.by_tenant, report.by_region, report.by_period):
        _assert_groups_add_up(report.total, groups)
    assert report.total.saved_pct == pytest.approx(
        100 * report.total.saved_g / report.total.baseline_g
    )


@pytest.mark.parametrize(
    ("period", "labels"),
    [("week", ["2024-W18", "2024-W22"]), ("month", ["2024-05", "2024-06"])],
)
def test_period_labels_are_utc_iso_weeks_and_months(period: str, labels: list[str]) -> None:
    report = _grouping_case(period)
    assert [g.key for g in report.by_period] == labels
    _assert_groups_add_up(report.total, report.by_period)


def test_naive_datetimes_and_unknown_periods_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_savings_report(
            jobs=[],
            energy_reports=[],
            regions={},
            actuals={},
            forecasts={},
            now=datetime(2024, 5, 1),
        )
    with pytest.raises(ValueError, match="period"):
        build([], [], period="fortnight")


def test_empty_report_has_zero_totals_and_no_percentage() -> None:
    report = build([], [])
    assert report.jobs == ()
    assert report.total.jobs == 0
    assert report.total.emissions_g == 0.0
    assert report.total.saved_pct is None


def _assert_groups_add_up(total: GroupSavings, groups: Sequence[GroupSavings]) -> None:
    assert sum(g.jobs for g in groups) == total.jobs
    for field in ("energy_kwh", "emissions_g", "baseline_g", "saved_g"):
        parts = math.fsum(getattr(g, field) for g in groups)
        assert parts == pytest.approx(getattr(total, field), rel=1e-9, abs=1e-9), field


_TENANTS = st.sampled_from(["a", "b", "c"])
_REGIONS = st.sampled_from(["home", "green", "far"])
_JOB = st.tuples(
    _TENANTS,
    _REGIONS,
    _REGIONS,
    st.integers(min_value=0, max_value=60 * 24 * 20),  # submit, minutes after T0
    st.integers(min_value=0, max_value=60 * 24 * 5),  # delay, minutes
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=600),  # slice length, minutes
            st.floats(min_value=0.0, max_value=50.0, allow_nan=False),  # kWh
        ),
        min_size=1,
        max_size=4,
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    specs=st.lists(_JOB, max_size=12),
    period=st.sampled_from(["day", "week", "month"]),
    with_actuals=st.booleans(),
)
def test_totals_equal_the_sum_of_every_grouping(
    specs: list[tuple[str, str, str, int, int, list[tuple[int, float]]]],
    period: str,
    with_actuals: bool,
) -> None:
    regions = {
        "home": region("home", "H", pue=1.1),
        "green": region("green", "G", pue=1.3),
        "far": region("far", "F"),
    }
    hours = 24 * 30
    data = [
        series("H", T0, [200.0 + 50 * math.sin(h) for h in range(hours)]),
        series("G", T0, [40.0 + (h % 11) for h in range(0, hours, 2)], resolution_s=7200),
        series("F", T0, [500.0 - (h % 13) for h in range(hours * 4)], resolution_s=900),
    ]
    jobs, reports = [], []
    for n, (tenant, home, ran_in, submit_min, delay_min, slices) in enumerate(specs):
        created = T0 + timedelta(minutes=submit_min)
        cursor = created + timedelta(minutes=delay_min)
        jobs.append(
            make_job(
                f"j{n}",
                tenant=tenant,
                home=home,
                ran_in=ran_in,
                created_at=created,
                started_at=cursor,
            )
        )
        for length_min, kwh in slices:
            end = cursor + timedelta(minutes=length_min)
            reports.append(energy(f"j{n}", cursor, end, kwh))
            cursor = end
    report = build(
        jobs,
        reports,
        regions=regions,
        period=period,
        actuals=data if with_actuals else [],
        forecasts=[] if with_actuals else data,
    )
    assert report.total.jobs == len(specs)
    for groups in (report.by_tenant, report.by_region, report.by_period):
        _assert_groups_add_up(report.total, groups)
    for row in report.jobs:
        assert row.saved_g == pytest.approx(row.baseline_g - row.emissions_g)
        # The series cover every run and every baseline: nothing is extrapolated.
        assert row.intensity_source == ("actual" if with_actuals else "forecast")
        # Emissions are energy x PUE x an intensity within the zone's range.
        pue = regions[row.region].pue
        assert row.emissions_g <= row.energy_kwh * pue * 501.0 + 1e-6
        assert row.emissions_g >= row.energy_kwh * pue * 39.0 - 1e-6

"""Which jobs a run replays and where they land: ``--from/--to`` on a trace with dates,
``--start-offset`` on any trace, ``--align-year`` by whole weeks onto the carbon traces' year,
and which resource a capacity option limits (with a warning when it cannot bind)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.simulation.inputs import CPU, GPU, capacity_resource
from scheduler.simulation.job_readers import JobTrace, TraceRecord, read_job_trace
from scheduler.simulation.placement import Selection, place
from scheduler.simulation.trace_input import (
    SimulationInputError,
    parse_date,
    parse_duration_s,
)

STEP_S = 900
SPAN_2023 = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
SPAN_2017 = (datetime(2017, 10, 1, tzinfo=UTC), datetime(2017, 11, 1, tzinfo=UTC))
PHILLY = (
    "timestamp,duration,num_gpus\n"
    "2017-10-09 07:01:55,66.0,1\n"  # a Monday
    "2017-10-10 09:00:00,600.0,1\n"
    "2017-10-16 12:00:00,600.0,2\n"
)


@pytest.fixture
def philly(tmp_path: Path) -> JobTrace:
    path = tmp_path / "philly.csv"
    path.write_text(PHILLY, encoding="utf-8")
    return read_job_trace(path)


def _at(placement_start: datetime, record: TraceRecord) -> datetime:
    return placement_start + timedelta(seconds=record.arrival_s)


def test_from_and_to_pick_jobs_by_date_and_keep_their_dates(philly: JobTrace) -> None:
    selection = Selection(
        start=parse_date("2017-10-09", "--from"), end=parse_date("2017-10-11", "--to")
    )
    placed = place(philly, selection, path="philly.csv", span=SPAN_2017, step_s=STEP_S)
    assert [_at(placed.start, r) for r in placed.records] == [
        datetime(2017, 10, 9, 7, 1, 55, tzinfo=UTC),
        datetime(2017, 10, 10, 9, tzinfo=UTC),
    ]
    assert placed.start == datetime(2017, 10, 9, tzinfo=UTC)  # on the grid
    assert placed.statements == (
        "selected jobs submitted from 2017-10-09 00:00 to 2017-10-11 00:00 (exclusive)",
    )


def test_dates_outside_the_carbon_traces_need_align_year(philly: JobTrace) -> None:
    selection = Selection(start=parse_date("2017-10-09", "--from"))
    with pytest.raises(SimulationInputError) as caught:
        place(philly, selection, path="philly.csv", span=SPAN_2023, step_s=STEP_S)
    assert str(caught.value) == (
        "philly.csv: the selected jobs start 2017-10-09 00:00, outside the carbon traces' "
        "common span (2023-01-01 to 2024-01-01): choose --from/--to inside it, or pass "
        "--align-year to map them by day of week and hour onto its year"
    )


def test_align_year_moves_jobs_by_whole_weeks_keeping_weekday_and_hour(philly: JobTrace) -> None:
    selection = Selection(start=parse_date("2017-10-09", "--from"), align_year=True)
    placed = place(philly, selection, path="philly.csv", span=SPAN_2023, step_s=STEP_S)
    originals = [
        datetime(2017, 10, 9, 7, 1, 55, tzinfo=UTC),
        datetime(2017, 10, 10, 9, tzinfo=UTC),
        datetime(2017, 10, 16, 12, tzinfo=UTC),
    ]
    moved = [_at(placed.start, r) for r in placed.records]
    for before, after in zip(originals, moved, strict=True):
        assert after.year == 2023
        assert (after.weekday(), after.time()) == (before.weekday(), before.time())
        assert (after - before) % timedelta(weeks=1) == timedelta(0)
    assert moved[0] == datetime(2023, 10, 9, 7, 1, 55, tzinfo=UTC)
    assert placed.statements[-1] == (
        "--align-year: jobs from Mon 2017-10-09 00:00 moved +313 weeks to Mon 2023-10-09 00:00 "
        "UTC (day of week and hour kept)"
    )


def test_start_offset_skips_the_start_of_a_relative_trace(tmp_path: Path) -> None:
    path = tmp_path / "gaia.csv"
    path.write_text("arrival_time,length,cpus\n0,1,1\n30,1,1\n50,2,1\n", encoding="utf-8")
    trace = read_job_trace(path)
    offset_s = parse_duration_s("1d", "--start-offset")
    placed = place(
        trace, Selection(offset_s=offset_s), path="gaia.csv", span=SPAN_2023, step_s=STEP_S
    )
    assert placed.start == SPAN_2023[0]
    assert [r.arrival_s / 3600 for r in placed.records] == [6.0, 26.0]
    assert placed.statements == ("selected jobs from 1 days after the trace's start",)


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (
            Selection(start=datetime(2017, 1, 1, tzinfo=UTC)),
            "gaia.csv: --from/--to need a trace with absolute times, and this gaia trace counts "
            "from its own start: use --start-offset (e.g. 30d) instead",
        ),
        (
            Selection(align_year=True),
            "gaia.csv: --align-year needs a trace with absolute times, and this gaia trace counts "
            "from its own start (it is placed at the carbon traces' start already)",
        ),
        (
            Selection(start=datetime(2017, 1, 1, tzinfo=UTC), offset_s=60.0),
            "give --from/--to or --start-offset, not both",
        ),
        (
            Selection(offset_s=400 * 86400.0),
            "gaia.csv: no job to replay in the selection (from 400 days after the trace's start)",
        ),
    ],
)
def test_selections_that_cannot_be_met_are_refused(
    tmp_path: Path, selection: Selection, message: str
) -> None:
    path = tmp_path / "gaia.csv"
    path.write_text("arrival_time,length,cpus\n0,1,1\n", encoding="utf-8")
    with pytest.raises(SimulationInputError) as caught:
        place(read_job_trace(path), selection, path="gaia.csv", span=SPAN_2023, step_s=STEP_S)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "seconds"), [("3600", 3600.0), ("90m", 5400.0), ("36h", 129600.0), ("2w", 1209600.0)]
)
def test_durations(value: str, seconds: float) -> None:
    assert parse_duration_s(value, "--start-offset") == seconds


def test_bad_dates_and_durations_are_refused() -> None:
    with pytest.raises(SimulationInputError) as caught:
        parse_date("next week", "--from")
    assert str(caught.value) == (
        "--from: expected a date (YYYY-MM-DD) or an ISO 8601 time, got 'next week'"
    )
    with pytest.raises(SimulationInputError) as caught:
        parse_duration_s("soon", "--start-offset")
    assert str(caught.value) == (
        "--start-offset: expected a duration such as 3600, 90m, 36h or 30d, got 'soon'"
    )


def _record(gpus: int, cpus: float) -> TraceRecord:
    return TraceRecord(source_id="j", arrival_s=0.0, duration_s=60.0, gpus=gpus, cpus=cpus)


def test_capacity_binds_on_the_resource_the_jobs_ask_for() -> None:
    warnings: list[str] = []
    cpu_only, gpu_only = [_record(0, 4.0)], [_record(2, 0.0)]
    assert capacity_resource(cpu_only, 8, None, "gaia.csv", warnings.append) == (GPU, None)
    assert warnings == [
        "--capacity 8 does not bind: no job in gaia.csv asks for a GPU; "
        "--cpu-capacity limits CPU cores"
    ]
    assert capacity_resource(cpu_only, 8, 16, "gaia.csv", warnings.append) == (CPU, 16)
    assert warnings[-1] == "--capacity 8 does not bind: no job in gaia.csv asks for a GPU"
    assert capacity_resource(gpu_only, 4, 16, "philly.csv", warnings.append) == (GPU, 4)
    assert warnings[-1] == "--cpu-capacity 16 does not bind: no job in philly.csv asks for a CPU"
    assert len(warnings) == 3
    assert capacity_resource(gpu_only, None, None, "philly.csv", warnings.append) == (GPU, None)
    assert len(warnings) == 3


def test_both_capacities_binding_at_once_is_refused() -> None:
    with pytest.raises(SimulationInputError) as caught:
        capacity_resource([_record(1, 8.0)], 4, 32, "pods.csv", lambda _m: None)
    assert str(caught.value) == (
        "--capacity and --cpu-capacity cannot both bind: jobs in pods.csv ask for GPUs and "
        "CPUs, and the planner models one resource per region; give one of them"
    )


def test_align_year_on_a_carbon_trace_of_a_few_weeks_takes_its_first_matching_week(
    philly: JobTrace,
) -> None:
    june = (datetime(2023, 6, 8, tzinfo=UTC), datetime(2023, 7, 9, tzinfo=UTC))  # a Thursday on
    selection = Selection(start=parse_date("2017-10-09", "--from"), align_year=True)
    placed = place(philly, selection, path="philly.csv", span=june, step_s=STEP_S)
    assert _at(placed.start, placed.records[0]) == datetime(2023, 6, 12, 7, 1, 55, tzinfo=UTC)
    assert placed.statements[-1] == (
        "--align-year: jobs from Mon 2017-10-09 00:00 moved +296 weeks to Mon 2023-06-12 00:00 "
        "UTC (day of week and hour kept)"
    )

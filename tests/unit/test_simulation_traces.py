"""Job-trace loaders on slices of the real files, and the deadline rules."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.simulation.job_traces import (
    JobTraceError,
    PowerModel,
    TraceFormat,
    detect_format,
    next_workday_deadline,
    read_job_trace,
    select_records,
    slack_deadline,
    to_sim_jobs,
)
from tests.shared_data import SHARED_DATA, requires_shared_data

JOBS = SHARED_DATA / "jobs"
pytestmark = requires_shared_data
PHILLY = JOBS / "pollux_philly" / "philly.csv"
ALIBABA = JOBS / "alibaba_cluster-trace-gpu-v2023" / "openb_pod_list_default.csv"
GAIA_PAI = JOBS / "gaia" / "pai-100k.csv"


def _slice(source: Path, tmp_path: Path, lines: int, trailer: str = "") -> Path:
    head = source.read_text(encoding="utf-8").splitlines(keepends=True)[:lines]
    target = tmp_path / source.name
    target.write_text("".join(head) + trailer, encoding="utf-8")
    return target


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [r for r in csv.DictReader(handle) if any(r.values())]


def test_detect_format_from_columns() -> None:
    assert detect_format(["arrival_time", "length", "cpus"]) is TraceFormat.GAIA
    assert (
        detect_format(["timestamp", "duration", "num_gpus", "gpu_time", "cluster"])
        is TraceFormat.PHILLY
    )
    assert (
        detect_format(["name", "num_gpu", "creation_time", "deletion_time", "scheduled_time"])
        is TraceFormat.ALIBABA
    )
    with pytest.raises(ValueError, match="unrecognised"):
        detect_format(["time", "value"])


def test_philly_slice_is_sorted_rebased_and_skips_the_blank_line(tmp_path: Path) -> None:
    path = _slice(PHILLY, tmp_path, 201, trailer="\n")
    trace = read_job_trace(path)
    raw = _rows(path)
    stamps = [datetime.fromisoformat(r["timestamp"]).replace(tzinfo=UTC) for r in raw]
    assert trace.format is TraceFormat.PHILLY
    assert len(trace.records) == 200
    assert trace.origin == min(stamps)
    arrivals = [r.arrival_s for r in trace.records]
    assert arrivals == sorted(arrivals)
    first_raw = raw[0]
    record = next(r for r in trace.records if r.source_id == "philly-0")
    assert record.arrival_s == (stamps[0] - min(stamps)).total_seconds()
    assert record.duration_s == float(first_raw["duration"])
    assert record.gpus == int(first_raw["num_gpus"])


def test_alibaba_uses_scheduled_to_deleted_and_drops_pending(tmp_path: Path) -> None:
    trace = read_job_trace(ALIBABA)
    raw = _rows(ALIBABA)
    ran = [
        r
        for r in raw
        if r["scheduled_time"]
        and r["deletion_time"]
        and int(r["deletion_time"]) > int(r["scheduled_time"])
    ]
    assert len(trace.records) == len(ran)
    assert all(r["pod_phase"] != "Pending" for r in ran)
    pod = next(r for r in trace.records if r.source_id == "openb-pod-0017")
    assert pod.duration_s == 10769854 - 9437497
    assert pod.gpus == 8
    assert pod.cpus == pytest.approx(88.0)


def test_gaia_hours_become_seconds(tmp_path: Path) -> None:
    trace = read_job_trace(_slice(GAIA_PAI, tmp_path, 51))
    raw = _rows(GAIA_PAI.parent / GAIA_PAI.name)[:50]
    assert len(trace.records) == 50
    assert trace.records[0].duration_s == pytest.approx(float(raw[0]["length"]) * 3600)
    assert trace.records[1].arrival_s == pytest.approx(float(raw[1]["arrival_time"]) * 3600)
    assert trace.records[0].gpus == 0
    assert trace.records[0].cpus == float(raw[0]["cpus"])


def test_unknown_columns_raise(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(JobTraceError, match="unrecognised"):
        read_job_trace(path)


@pytest.mark.parametrize(
    ("finish", "deadline"),
    [
        (datetime(2020, 1, 6, 13, 0), datetime(2020, 1, 6, 13, 0)),  # Monday, working hours
        (datetime(2020, 1, 6, 17, 0), datetime(2020, 1, 6, 17, 0)),  # 17:00 is not after 17:00
        (datetime(2020, 1, 6, 17, 30), datetime(2020, 1, 7, 9, 0)),  # evening: next day 09:00
        (datetime(2020, 1, 7, 8, 30), datetime(2020, 1, 7, 9, 0)),  # early: that day 09:00
        (datetime(2020, 1, 11, 10, 0), datetime(2020, 1, 13, 9, 0)),  # Saturday: Monday
        (datetime(2020, 1, 12, 1, 0), datetime(2020, 1, 13, 9, 0)),  # Sunday: next day
        (datetime(2020, 1, 10, 18, 0), datetime(2020, 1, 11, 9, 0)),  # Friday evening: Saturday
    ],
)
def test_next_workday_rule(finish: datetime, deadline: datetime) -> None:
    duration_s = 4 * 3600.0
    arrival = finish.replace(tzinfo=UTC) - timedelta(seconds=duration_s)
    assert next_workday_deadline(arrival, duration_s) == deadline.replace(tzinfo=UTC)


def test_select_and_place_records(tmp_path: Path) -> None:
    trace = read_job_trace(_slice(PHILLY, tmp_path, 2001))
    chosen = select_records(trace, min_duration_s=3600, min_gpus=1, max_gpus=8, count=20, seed=3)
    assert len(chosen) == 20
    assert all(r.duration_s >= 3600 and 1 <= r.gpus <= 8 for r in chosen)
    assert chosen == select_records(
        trace, min_duration_s=3600, min_gpus=1, max_gpus=8, count=20, seed=3
    )
    start = datetime(2022, 3, 1, tzinfo=UTC)
    jobs = to_sim_jobs(
        chosen,
        start=start,
        regions=("a", "b"),
        align_s=900,
        deadline_rule=slack_deadline(3600.0),
        power=PowerModel(gpu_w=250.0, base_w=0.0),
    )
    for job, record in zip(jobs, chosen, strict=True):
        assert job.arrival >= start + timedelta(seconds=record.arrival_s)
        assert (job.arrival - start).total_seconds() % 900 == 0
        assert job.deadline == job.arrival + timedelta(seconds=record.duration_s + 3600.0)
        assert job.power_w == 250.0 * record.gpus
        assert job.home_region in ("a", "b")

"""Job traces: each known format detected from a small file written here and the same file mapped
by hand with ``--job-columns``; rows that never ran skipped and counted; every refusal word for
word (the file, the row, the column, what was expected, the formats accepted)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.simulation.job_readers import (
    ACCEPTED_JOB_FORMATS,
    JobTraceError,
    TraceFormat,
    parse_job_columns,
    read_job_trace,
)
from scheduler.simulation.trace_input import SimulationInputError

GAIA = "arrival_time,length,cpus\n0.0,0.75,4\n0.5,2.0,2\n"
ALIBABA = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
    "deletion_time,scheduled_time\n"
    "pod-0,12000,16384,1,1000,,LS,Running,0,7200,600\n"
    "pod-1,6000,12288,2,460,,LS,Running,1800,5400,1800\n"
    "pod-2,6000,12288,1,460,,BE,Pending,1900,,\n"
)
PHILLY = (
    "timestamp,duration,num_gpus,gpu_time,cluster\n"
    "2017-10-09 07:01:55,66.0,1,66.0,11cb48\n"
    "2017-10-09 06:13:03,2951.0,4,11804.0,6214e9\n\n"
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _shape(path: Path, columns: dict[str, str] | None = None) -> list[tuple[float, ...]]:
    trace = read_job_trace(path, columns)
    return [(r.arrival_s, r.duration_s, r.gpus, r.cpus) for r in trace.records]


@pytest.mark.parametrize(
    ("text", "fmt", "expected", "skipped"),
    [
        (GAIA, TraceFormat.GAIA, [(0.0, 2700.0, 0, 4.0), (1800.0, 7200.0, 0, 2.0)], ()),
        (
            ALIBABA,
            TraceFormat.ALIBABA,
            [(0.0, 6600.0, 1, 12.0), (1800.0, 3600.0, 2, 6.0)],
            (("never scheduled", 1),),
        ),
        (PHILLY, TraceFormat.PHILLY, [(0.0, 2951.0, 4, 0.0), (2932.0, 66.0, 1, 0.0)], ()),
    ],
)
def test_each_known_format_is_detected(
    tmp_path: Path,
    text: str,
    fmt: TraceFormat,
    expected: list[tuple[float, ...]],
    skipped: tuple[tuple[str, int], ...],
) -> None:
    path = _write(tmp_path, "jobs.csv", text)
    trace = read_job_trace(path)
    assert trace.format is fmt
    assert _shape(path) == expected
    assert trace.skipped == skipped


def test_philly_mapped_by_hand_reads_the_same_jobs(tmp_path: Path) -> None:
    path = _write(tmp_path, "philly.csv", PHILLY)
    columns = parse_job_columns("submit=timestamp,duration=duration,gpus=num_gpus")
    mapped = read_job_trace(path, columns)
    assert mapped.format is TraceFormat.MAPPED
    assert (
        mapped.origin == read_job_trace(path).origin == datetime(2017, 10, 9, 6, 13, 3, tzinfo=UTC)
    )
    assert _shape(path, columns) == _shape(path)


def test_alibaba_mapped_by_hand_with_epoch_times_reads_the_same_jobs(tmp_path: Path) -> None:
    path = _write(tmp_path, "pods.csv", ALIBABA)
    columns = parse_job_columns(
        "submit=creation_time,start=scheduled_time,end=deletion_time,gpus=num_gpu"
    )
    mapped = read_job_trace(path, columns)
    # cpu_milli is not CPUs: left unmapped, the mapped jobs ask for none.
    assert [(a, d, g) for a, d, g, _ in _shape(path, columns)] == [
        (a, d, g) for a, d, g, _ in _shape(path)
    ]
    assert mapped.skipped == (("no start", 1),)


def test_a_mapped_trace_mixes_iso_and_epoch_times_and_counts_rows_that_never_ran(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path,
        "cluster.csv",
        "id,queued,began,finished,gpu,cores\n"
        "a,2024-03-01T10:00:00Z,2024-03-01T10:30:00Z,2024-03-01T12:30:00Z,2,8\n"
        "b,1709290800,1709290800,,1,4\n"  # still running: no end
        "c,2024-03-01 11:00:00,,,1,4\n"  # never started
        "d,2024-03-01 11:30:00,2024-03-01 12:00:00,2024-03-01 11:00:00,,\n"  # ended first
        "e,2024-03-01 12:00:00+01:00,1709291700,1709295300,,2.5\n",
    )
    columns = parse_job_columns("submit=queued,start=began,end=finished,gpus=gpu,cpus=cores")
    trace = read_job_trace(path, columns)
    assert trace.origin == datetime(2024, 3, 1, 10, tzinfo=UTC)
    # e was submitted at 11:00 UTC, ran 11:15 to 12:15; gpus left empty ask for none.
    assert _shape(path, columns) == [(0.0, 7200.0, 2, 8.0), (3600.0, 3600.0, 0, 2.5)]
    assert trace.skipped == (("no end", 1), ("no start", 1), ("no positive run time", 1))
    assert trace.skipped_rows == 3


def test_a_mapped_trace_with_durations(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "t,secs\n2024-03-01 10:00,600\n2024-03-01 10:05,\n")
    trace = read_job_trace(path, parse_job_columns("submit=t,duration=secs"))
    assert [(r.arrival_s, r.duration_s, r.gpus, r.cpus) for r in trace.records] == [
        (0.0, 600.0, 0, 0.0)
    ]
    assert trace.skipped == (("no end", 1),)


def test_unknown_columns_list_the_accepted_formats(tmp_path: Path) -> None:
    path = _write(tmp_path, "columns.csv", "when,how_long\n1,2\n")
    with pytest.raises(JobTraceError) as caught:
        read_job_trace(path)
    assert str(caught.value) == (
        f"{path}: unrecognised job trace columns ['how_long', 'when']: accepted formats: "
        "GAIA (arrival_time,length,cpus), "
        "Alibaba openb (num_gpu,creation_time,scheduled_time,deletion_time), "
        "Philly (timestamp,duration,num_gpus), "
        "or any CSV mapped with --job-columns submit=…,end=…|duration=…[,start=…,gpus=…,cpus=…]"
    )
    assert ACCEPTED_JOB_FORMATS in str(caught.value)
    assert isinstance(caught.value, SimulationInputError)


@pytest.mark.parametrize(
    ("text", "columns", "message"),
    [
        (
            "arrival_time,length,cpus\n0,1,1\n0,abc,1\n",
            None,
            "row 3, column 'length': expected a number of hours >= 0, got 'abc'",
        ),
        (
            "timestamp,duration,num_gpus\n2017-10-09 07:01:55,66,1.5\n",
            None,
            "row 2, column 'num_gpus': expected a whole number >= 0, got '1.5'",
        ),
        (
            "timestamp,duration,num_gpus\n2017-10-09 07:01:55,66,1\nsoon,66,1\n",
            None,
            "row 3, column 'timestamp': expected a time (epoch seconds or ISO 8601, "
            "e.g. 2023-06-01 12:00:00), got 'soon'",
        ),
        (
            "sub,fin\n2024-03-01 10:00,2024-03-01 11:00\n2024-03-01 10:00,later\n",
            {"submit": "sub", "end": "fin"},
            "row 3, column 'fin': expected a time (epoch seconds or ISO 8601, "
            "e.g. 2023-06-01 12:00:00), got 'later'",
        ),
        (
            "sub,fin\n2024-03-01 10:00,2024-03-01 11:00\n",
            {"submit": "submitted", "end": "fin"},
            "no column 'submitted' (from --job-columns) among ['sub', 'fin']",
        ),
        ("", None, "empty job trace file: expected a CSV header row"),
    ],
    ids=["gaia-number", "philly-gpus", "philly-time", "mapped-end", "mapped-missing", "empty"],
)
def test_refusals_name_the_file_row_and_column(
    tmp_path: Path, text: str, columns: dict[str, str] | None, message: str
) -> None:
    path = _write(tmp_path, "jobs.csv", text)
    with pytest.raises(SimulationInputError) as caught:
        read_job_trace(path, columns)
    assert str(caught.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("end=e", "--job-columns: submit is required (got 'end=e')"),
        ("submit=s", "--job-columns: end or duration is required (got 'submit=s')"),
        ("submit=s,end=e,duration=d", "--job-columns: give end or duration, not both"),
        (
            "submit=s,end=e,memory=m",
            "--job-columns: cannot read 'memory=m': expected key=column with keys submit, "
            "start, end, duration, gpus, cpus (e.g. --job-columns submit=…,start=…,end=…,"
            "duration=…,gpus=…,cpus=…)",
        ),
    ],
)
def test_job_column_mappings_are_checked(text: str, message: str) -> None:
    with pytest.raises(SimulationInputError) as caught:
        parse_job_columns(text)
    assert str(caught.value) == message

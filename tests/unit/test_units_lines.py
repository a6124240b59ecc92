"""The unit counts a worker writes into its job's log, and the scheduler's reading of them:
the highest valid count of the attempt is read back exactly, nothing else is believed."""

from __future__ import annotations

import io
import json
from pathlib import Path

from scheduler.domain.progress import JobProgress
from scheduler.service.energy_log import UNITS_PREFIX, parse_units_lines
from workers.progress import UNITS_LINE_PREFIX, ProgressReporter
from workers.units import write_units_file


def test_what_the_runner_writes_the_scheduler_reads_back(tmp_path: Path) -> None:
    assert UNITS_LINE_PREFIX == UNITS_PREFIX
    out = io.StringIO()
    path = tmp_path / "units.json"
    progress = ProgressReporter(None, path, attempt=2, job_id="job-1", lines=out)
    progress.poll()  # no file yet: no line
    for total in (10.0, 10.0, 25.0, 7.0, 1000.5):  # a repeat and a lower total write nothing
        write_units_file(path, total, "steps")
        progress.poll()
    progress.close(1.0)
    written = [json.loads(line.removeprefix(UNITS_PREFIX)) for line in out.getvalue().splitlines()]
    assert [w["units"] for w in written] == [10.0, 25.0, 1000.5]
    assert {(w["job_id"], w["attempt"], w["unit"]) for w in written} == {("job-1", 2, "steps")}

    log = "user output\n" + out.getvalue() + "more output\n"
    read, refused = parse_units_lines(log, "job-1", 2, "steps")
    assert read == JobProgress(job_id="job-1", attempt=2, units=1000.5, unit="steps")
    assert refused == 0
    # Another attempt's or job's lines, or another unit, are not this count.
    assert parse_units_lines(log, "job-1", 1, "steps") == (None, 3)
    assert parse_units_lines(log, "job-2", 2, "steps") == (None, 3)
    assert parse_units_lines(log, "job-1", 2, "requests") == (None, 3)


def test_without_a_job_id_nothing_is_written(tmp_path: Path) -> None:
    out = io.StringIO()
    path = tmp_path / "units.json"
    progress = ProgressReporter(None, path, attempt=1, lines=out)
    write_units_file(path, 5.0, "steps")
    progress.poll()
    assert progress.state.units == 5.0
    assert out.getvalue() == ""


def test_bad_lines_are_refused_and_the_highest_good_one_wins() -> None:
    def line(**body: object) -> str:
        return UNITS_PREFIX + json.dumps({"job_id": "j", "attempt": 1, "unit": "requests", **body})

    log = "\n".join(
        [
            line(units=40),
            "noise " + line(units=90),  # a prefix mid-line (a log decorator) still reads
            line(units=-1),
            line(units=float("nan")),
            line(units=1e16),
            line(units=True),
            line(units="70"),
            UNITS_PREFIX + "{not json",
            UNITS_PREFIX + "[1, 2]",
            line(units=60),
        ]
    )
    read, refused = parse_units_lines(log, "j", 1, "requests")
    assert read == JobProgress(job_id="j", attempt=1, units=90.0, unit="requests")
    assert refused == 7
    assert parse_units_lines("no lines at all\n", "j", 1, "requests") == (None, 0)

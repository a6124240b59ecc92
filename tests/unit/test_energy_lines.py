"""The energy lines a worker writes into its job's log, and the scheduler's reading of them:
what one writes the other reads back exactly, and nothing else is believed."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from scheduler.service.energy_log import PREFIX, parse_energy_lines
from workers.intervals import IntervalReport
from workers.reporter import ENERGY_LINE_PREFIX, EnergyReporter

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _reports(n: int) -> list[IntervalReport]:
    return [
        IntervalReport(
            attempt=2,
            node="n1",
            device=f"gpu:{i % 2}",
            interval_start=T0 + timedelta(seconds=30 * i),
            interval_end=T0 + timedelta(seconds=30 * (i + 1)),
            energy_j=1000.0 + i,
            method="nvml-counter",
        )
        for i in range(n)
    ]


def test_what_the_reporter_writes_the_scheduler_reads_back() -> None:
    assert ENERGY_LINE_PREFIX == PREFIX
    out = io.StringIO()
    reporter = EnergyReporter(None, job_id="job-1", lines=out)  # no token: lines only
    reporter.submit(_reports(3))
    reporter.submit(_reports(5)[3:])
    stats = reporter.close(5.0)
    assert stats.dropped == 0
    log = "user output\n" + out.getvalue() + "more output\n"
    reports, refused = parse_energy_lines(log, "job-1", 2)
    assert refused == 0
    assert [(r.device, r.interval_start, r.energy_j) for r in reports] == [
        (r.device, r.interval_start, r.energy_j) for r in _reports(5)
    ]
    assert {r.method.value for r in reports} == {"nvml-counter"}


def test_lines_of_other_jobs_or_with_bad_numbers_are_refused() -> None:
    good = {
        "job_id": "job-1",
        "attempt": 1,
        "node": "n",
        "device": "gpu:0",
        "interval_start": T0.isoformat(),
        "interval_end": (T0 + timedelta(seconds=30)).isoformat(),
        "energy_j": 10.0,
        "method": "rapl",
    }
    bad = [
        {**good, "job_id": "job-2"},  # another job's (a tenant printing lines for it)
        {**good, "attempt": 2},  # another attempt's
        {**good, "energy_j": float("nan")},
        {**good, "energy_j": 1e308},
        {**good, "energy_j": -1.0},
        {**good, "interval_end": good["interval_start"]},
        {**good, "interval_start": "2026-01-01T00:00:00"},  # naive
        {**good, "method": "guess"},
        {**good, "device": ""},
    ]
    text = "\n".join(PREFIX + json.dumps(line) for line in [good, *bad])
    text += f"\n{PREFIX}not json\n{PREFIX}[1, 2]\n"
    reports, refused = parse_energy_lines(text, "job-1", 1)
    assert len(reports) == 1
    assert reports[0].energy_j == 10.0
    assert refused == len(bad) + 2

"""Energy reports and unit counts a worker wrote into its job's log, read back by reconcile.

The runner's reporter (``workers.reporter``) prints every report it makes as one line,
``GREENLIGHT_ENERGY {json}``, besides posting it to the API; so reports the API never received
(an outage of the API or the database) still reach the store through the cluster's log. The
line is as trustworthy as a POST with the attempt's token (the same process writes both), and
is checked as strictly: only this job's attempt, finite non-negative energy, a real interval,
a known method. The store's key ``(job_id, attempt, device, interval_start)`` makes a line the
API already received a duplicate, so nothing counts twice.

The runner's progress reporter (``workers.progress``) writes each new total of the job's
functional units as ``GREENLIGHT_UNITS {json}`` (``job_id``, ``attempt``, ``units``, ``unit``);
the highest valid one of the attempt is its count. Storing it is as idempotent and monotone as
a POST: the same total again changes nothing, and a lower one (or an older attempt's) never
replaces what the store holds.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from scheduler.domain import EnergyReport, MeterMethod
from scheduler.domain.progress import MAX_UNITS, JobProgress

PREFIX = "GREENLIGHT_ENERGY "
UNITS_PREFIX = "GREENLIGHT_UNITS "
# A line with more energy than this per interval is not believed (a 100 kW device for a day).
MAX_ENERGY_J = 100_000.0 * 86_400
_MAX_NAME = 256


def parse_energy_lines(text: str, job_id: str, attempt: int) -> tuple[list[EnergyReport], int]:
    """The valid reports of ``job_id``'s ``attempt`` in ``text``, and how many prefixed lines
    were refused. Times are the worker's wall clock, aware UTC."""
    reports: list[EnergyReport] = []
    refused = 0
    for line in text.splitlines():
        at = line.find(PREFIX)
        if at < 0:
            continue
        report = _report(line[at + len(PREFIX) :], job_id, attempt)
        if report is None:
            refused += 1
        else:
            reports.append(report)
    return reports, refused


def _report(body: str, job_id: str, attempt: int) -> EnergyReport | None:
    try:
        data: Any = json.loads(body)
        if not isinstance(data, dict):
            return None
        if data.get("job_id") != job_id or data.get("attempt") != attempt:
            return None
        start = datetime.fromisoformat(str(data["interval_start"]))
        end = datetime.fromisoformat(str(data["interval_end"]))
        energy_j = float(data["energy_j"])
        method = MeterMethod(str(data["method"]))
        node, device = str(data.get("node", "")), str(data["device"])
    except (ValueError, KeyError, TypeError):
        return None
    if start.tzinfo is None or end.tzinfo is None or not start < end:
        return None
    if not (math.isfinite(energy_j) and 0.0 <= energy_j <= MAX_ENERGY_J):
        return None
    if not device or len(device) > 64 or len(node) > _MAX_NAME or "\x00" in device + node:
        return None
    return EnergyReport(
        job_id=job_id,
        attempt=attempt,
        node=node,
        device=device,
        interval_start=start,
        interval_end=end,
        energy_j=energy_j,
        method=method,
    )


def parse_units_lines(
    text: str, job_id: str, attempt: int, unit: str
) -> tuple[JobProgress | None, int]:
    """The highest valid count of ``job_id``'s ``attempt`` in ``text`` (None without one), and
    how many prefixed lines were refused: another job or attempt, another unit than ``unit``
    (the job kind's), a count that is not a finite number in 0..MAX_UNITS, not JSON."""
    best: float | None = None
    refused = 0
    for line in text.splitlines():
        at = line.find(UNITS_PREFIX)
        if at < 0:
            continue
        units = _units(line[at + len(UNITS_PREFIX) :], job_id, attempt, unit)
        if units is None:
            refused += 1
        elif best is None or units > best:
            best = units
    if best is None:
        return None, refused
    return JobProgress(job_id=job_id, attempt=attempt, units=best, unit=unit), refused


def _units(body: str, job_id: str, attempt: int, unit: str) -> float | None:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("job_id") != job_id or data.get("attempt") != attempt or data.get("unit") != unit:
        return None
    units = data.get("units")
    # bool is an int to Python; a count is not true or false.
    if isinstance(units, bool) or not isinstance(units, int | float):
        return None
    if not (math.isfinite(units) and 0 <= units <= MAX_UNITS):
        return None
    return float(units)

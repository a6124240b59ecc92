"""Energy reports sent by workers, and the units that convert them."""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from scheduler.domain.errors import GreenlightError

J_PER_KWH = 3_600_000.0


class MeterMethod(enum.StrEnum):
    NVML_COUNTER = "nvml-counter"  # nvmlDeviceGetTotalEnergyConsumption (Volta+)
    NVML_POWER = "nvml-power"  # integrated nvmlDeviceGetPowerUsage samples
    RAPL = "rapl"  # /sys/class/powercap energy_uj counters
    ESTIMATE = "estimate"  # configured power x time: flagged, not measured


@dataclass(frozen=True, slots=True, kw_only=True)
class EnergyReport:
    """Energy one device used in ``[interval_start, interval_end)``.

    Idempotent by ``(job_id, attempt, device, interval_start)``: a retried POST is not counted
    twice.
    """

    job_id: str
    attempt: int
    node: str
    device: str  # "gpu:0", "cpu:package-0", "estimate:gpu", ...
    interval_start: datetime
    interval_end: datetime
    energy_j: float
    method: MeterMethod

    @property
    def estimated(self) -> bool:
        return self.method is MeterMethod.ESTIMATE

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH


# Limits on what a worker may report (documented in the README's design section).
MAX_REPORTS_PER_POST = 1_000
# One device's report can claim at most this much power over its interval: far above any GPU
# or CPU package, and above a whole-job estimate for the largest node there is.
MAX_DEVICE_POWER_W = 100_000.0
# One report covers at most a day (the runner cuts every 30 s by default).
MAX_INTERVAL_S = 86_400.0
# Worker and service clocks differ: an interval may stick out of the attempt's run this much.
RUN_TOLERANCE_S = 60.0
# After an attempt ends, its token and its reports are accepted this much longer (the runner's
# final flush, retried through a short API or database outage); then both are refused.
ATTEMPT_GRACE_S = 600.0


class EnergyConflict(GreenlightError):
    """A report contradicts one already stored: the same key with other figures, or an interval
    that overlaps another of the same device and attempt; or the attempt no longer accepts
    reports."""


def report_problem(report: EnergyReport) -> str | None:
    """Why ``report`` is impossible on its own (no store needed), or None: non-finite or negative
    energy, an interval that ends before it starts or spans more than MAX_INTERVAL_S, or more
    energy than MAX_DEVICE_POWER_W over the interval (at least one second)."""
    duration_s = (report.interval_end - report.interval_start).total_seconds()
    if not math.isfinite(report.energy_j) or report.energy_j < 0:
        return "energy_j must be a finite number >= 0"
    if duration_s < 0:
        return "interval_end must not be before interval_start"
    if duration_s > MAX_INTERVAL_S:
        return f"an interval may span at most {MAX_INTERVAL_S:.0f} s"
    most_j = MAX_DEVICE_POWER_W * max(duration_s, 1.0)
    if report.energy_j > most_j:
        return (
            f"energy_j {report.energy_j:.6g} J over {duration_s:g} s exceeds "
            f"{MAX_DEVICE_POWER_W:g} W per device"
        )
    return None


def _key(report: EnergyReport) -> tuple[str, int, str, datetime]:
    return (report.job_id, report.attempt, report.device, report.interval_start)


def new_reports(
    stored: Iterable[EnergyReport], incoming: Iterable[EnergyReport]
) -> list[EnergyReport]:
    """The reports of ``incoming`` not yet in ``stored``, in order.

    An exact repeat of a stored (or earlier incoming) report is a duplicate and dropped: that is
    what makes a retried POST safe. Raises EnergyConflict for the same key with other figures
    (end, joules, method) or an interval that overlaps another of the same job, attempt and
    device: counting both would count energy twice.
    """
    by_key: dict[tuple[str, int, str, datetime], EnergyReport] = {}
    # Per device, stored spans sorted by start; they never overlap, so their ends are sorted too.
    spans: dict[tuple[str, int, str], list[tuple[datetime, datetime]]] = {}
    for report in stored:
        by_key[_key(report)] = report
        spans.setdefault(_key(report)[:3], []).append((report.interval_start, report.interval_end))
    for device_spans in spans.values():
        device_spans.sort()
    fresh = []
    for report in incoming:
        known = by_key.get(_key(report))
        if known is not None:
            if (known.interval_end, known.energy_j, known.method, known.node) != (
                report.interval_end,
                report.energy_j,
                report.method,
                report.node,
            ):
                raise EnergyConflict(
                    f"a different report for {report.device} attempt {report.attempt} from "
                    f"{report.interval_start.isoformat()} is already stored"
                )
            continue
        device_spans = spans.setdefault(_key(report)[:3], [])
        span = (report.interval_start, report.interval_end)
        _check_no_overlap(report, device_spans, span)
        bisect.insort(device_spans, span)
        by_key[_key(report)] = report
        fresh.append(report)
    return fresh


def _check_no_overlap(
    report: EnergyReport,
    spans: list[tuple[datetime, datetime]],
    span: tuple[datetime, datetime],
) -> None:
    start, end = span
    # The neighbours: the last span starting before this one ends, and the one starting at or
    # after this one's start (a zero-length span overlaps nothing).
    i = bisect.bisect_left(spans, (end, end))
    for other_start, other_end in spans[max(i - 1, 0) : i + 1]:
        if start < other_end and other_start < end:
            raise EnergyConflict(
                f"{report.device} interval {start.isoformat()} to {end.isoformat()} overlaps a "
                f"stored one ({other_start.isoformat()} to {other_end.isoformat()})"
            )

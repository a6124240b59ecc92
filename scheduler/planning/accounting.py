"""Emissions arithmetic for reports: energy x PUE x intensity, integrated over real intervals.

A series is piecewise constant: each point holds from its ``valid_at`` for ``resolution_s`` or
until the next point, whichever comes first. Intensity over an interval is the time-weighted
mean over the part of the interval the series covers (gaps are left out, not guessed). Pure: no
clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from scheduler.domain import J_PER_KWH, Forecast, ForecastUnavailable
from scheduler.planning.grid import series_arrays


def _epoch_s(when: datetime) -> float:
    if when.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return when.timestamp()


def _overlaps(series: Forecast, start: datetime, end: datetime) -> tuple[float, float]:
    """``(g/kWh x seconds, covered seconds)`` of the series over ``[start, end)``."""
    if not series.points:
        return 0.0, 0.0
    starts, ends, values = series_arrays(series)
    lo, hi = _epoch_s(start), _epoch_s(end)
    inside = np.clip(np.minimum(ends, hi) - np.maximum(starts, lo), 0.0, None)
    return float(np.dot(inside, values)), float(inside.sum())


def covered_s(series: Forecast, start: datetime, end: datetime) -> float:
    """Seconds of ``[start, end)`` the series has a value for."""
    return _overlaps(series, start, end)[1]


def interval_intensity_g_per_kwh(series: Forecast, start: datetime, end: datetime) -> float:
    """Time-weighted mean intensity (g/kWh) over ``[start, end)``.

    A zero-length interval gets the value in force at ``start``. Raises ForecastUnavailable
    when the series covers no part of the interval, ValueError for naive datetimes or
    ``end < start``.
    """
    if end < start:
        raise ValueError(f"interval ends ({end}) before it starts ({start})")
    if end == start:
        starts, ends, values = (
            series_arrays(series) if series.points else (np.zeros(0), np.zeros(0), np.zeros(0))
        )
        at = _epoch_s(start)
        hit = np.flatnonzero((starts <= at) & (at < ends))
        if hit.size == 0:
            raise ForecastUnavailable(series.zone, f"no value at {start.isoformat()}")
        return float(values[hit[0]])
    weighted, covered = _overlaps(series, start, end)
    if covered <= 0:
        raise ForecastUnavailable(
            series.zone, f"no value between {start.isoformat()} and {end.isoformat()}"
        )
    return weighted / covered


def emissions_g(
    energy_kwh: float,
    pue: float,
    series: Forecast,
    start: datetime,
    end: datetime,
) -> float:
    """Emissions (g) of ``energy_kwh`` of IT energy drawn at constant power over
    ``[start, end)`` in a data centre of ``pue``: ``energy x pue x mean intensity``.

    Raises ForecastUnavailable when the series covers none of the interval.
    """
    return energy_kwh * pue * interval_intensity_g_per_kwh(series, start, end)


def profile_emissions_g(
    intervals: Sequence[tuple[datetime, datetime, float]],
    pue: float,
    series: Forecast,
) -> float:
    """Emissions (g) of an energy profile: ``(start, end, energy_j)`` intervals (e.g. a job's
    energy reports), each at constant power within itself. Raises ForecastUnavailable when the
    series covers none of some interval with energy in it."""
    total = 0.0
    for start, end, energy_j in intervals:
        if energy_j == 0:
            continue
        total += emissions_g(energy_j / J_PER_KWH, pue, series, start, end)
    return total

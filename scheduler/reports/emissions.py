"""Emissions accounting for the savings report: energy profiles priced on intensity series.

Pure: numpy and the standard library, no I/O, no clock. Times are POSIX seconds (floats) here so
the integration vectorises; callers convert aware datetimes with ``datetime.timestamp()``.

An intensity series is a step function: each point holds its ``g_per_kwh`` from ``valid_at``
for ``resolution_s`` seconds or until the next point, whichever comes first. Gaps are allowed.
A span is priced on actuals where they cover it, on the forecast where only the forecast does,
and on the last known value (or the first one, before a series begins) where neither does; the
worst of these sources is reported so that a figure built on anything but actuals is flagged.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scheduler.domain import J_PER_KWH, Forecast, ForecastUnavailable

FloatArray = npt.NDArray[np.float64]


class IntensitySource(enum.StrEnum):
    """Where the intensity behind a figure came from, from most to least trustworthy."""

    ACTUAL = "actual"  # measured intensity covered every second
    FORECAST = "forecast"  # some seconds were priced on the forecast (no actuals there)
    EXTRAPOLATED = "extrapolated"  # some seconds had neither: priced on the last known value

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {IntensitySource.ACTUAL: 0, IntensitySource.FORECAST: 1, IntensitySource.EXTRAPOLATED: 2}


def worst_source(a: IntensitySource, b: IntensitySource) -> IntensitySource:
    """The less trustworthy of two sources."""
    return a if a.rank >= b.rank else b


@dataclass(frozen=True, slots=True)
class EnergySlice:
    """``energy_j`` joules drawn uniformly over ``[start_s, end_s)`` (POSIX seconds).

    A zero-length slice is energy at one instant, priced at the intensity valid then.
    """

    start_s: float
    end_s: float
    energy_j: float


@dataclass(frozen=True, slots=True)
class StepSeries:
    """A sorted, non-overlapping piecewise-constant intensity series (g/kWh over POSIX seconds)."""

    starts_s: FloatArray
    ends_s: FloatArray
    values_g_per_kwh: FloatArray

    @classmethod
    def of(cls, series: Forecast | None) -> StepSeries:
        """Build from a domain series; ``None`` gives an empty series."""
        points = series.points if series is not None else ()
        starts = np.array([p.valid_at.timestamp() for p in points], dtype=np.float64)
        values = np.array([p.g_per_kwh for p in points], dtype=np.float64)
        order = np.argsort(starts, kind="stable")
        starts, values = starts[order], values[order]
        resolution_s = float(series.resolution_s) if series is not None else 0.0
        ends = starts + resolution_s
        # A point holds until the next one begins, so overlapping points never count twice.
        if len(starts) > 1:
            ends[:-1] = np.minimum(ends[:-1], starts[1:])
        return cls(starts, ends, values)

    @property
    def empty(self) -> bool:
        return len(self.starts_s) == 0

    def integrate(self, a_s: float, b_s: float) -> tuple[float, list[tuple[float, float]]]:
        """Integral of intensity over the covered part of ``[a_s, b_s)``, in g/kWh x s.

        Also returns the uncovered sub-spans, in order.
        """
        lo = int(np.searchsorted(self.ends_s, a_s, side="right"))
        hi = int(np.searchsorted(self.starts_s, b_s, side="left"))
        seg_start = np.maximum(self.starts_s[lo:hi], a_s)
        seg_end = np.minimum(self.ends_s[lo:hi], b_s)
        keep = seg_end > seg_start
        seg_start, seg_end = seg_start[keep], seg_end[keep]
        total = float(np.dot(seg_end - seg_start, self.values_g_per_kwh[lo:hi][keep]))
        gap_start = np.concatenate(([a_s], seg_end))
        gap_end = np.concatenate((seg_start, [b_s]))
        is_gap = gap_end > gap_start
        gaps = list(zip(gap_start[is_gap].tolist(), gap_end[is_gap].tolist(), strict=True))
        return total, gaps

    def value_at(self, t_s: float) -> float | None:
        """Intensity valid at ``t_s``, or None where the series has no point covering it."""
        i = int(np.searchsorted(self.starts_s, t_s, side="right")) - 1
        if i >= 0 and t_s < self.ends_s[i]:
            return float(self.values_g_per_kwh[i])
        return None

    def last_known(self, t_s: float) -> float:
        """The latest value that began at or before ``t_s`` (the first value before the series).

        Raises IndexError on an empty series.
        """
        i = int(np.searchsorted(self.starts_s, t_s, side="right")) - 1
        return float(self.values_g_per_kwh[max(i, 0)])


@dataclass(frozen=True, slots=True)
class ZoneIntensity:
    """One zone's actuals and forecast, priced actual-first (see the module docstring)."""

    zone: str
    actual: StepSeries
    forecast: StepSeries

    @classmethod
    def of(cls, zone: str, actual: Forecast | None, forecast: Forecast | None) -> ZoneIntensity:
        return cls(zone, StepSeries.of(actual), StepSeries.of(forecast))

    def _check(self) -> None:
        if self.actual.empty and self.forecast.empty:
            raise ForecastUnavailable(self.zone, "no actual or forecast intensity")

    def _fallback(self) -> StepSeries:
        return self.forecast if self.actual.empty else self.actual

    def integral(self, a_s: float, b_s: float) -> tuple[float, IntensitySource]:
        """Integral of intensity over ``[a_s, b_s)`` in g/kWh x s, and its worst source.

        Raises ForecastUnavailable when the zone has neither actuals nor a forecast.
        """
        self._check()
        total, gaps = self.actual.integrate(a_s, b_s)
        source = IntensitySource.ACTUAL
        if gaps and not self.forecast.empty:
            remaining: list[tuple[float, float]] = []
            for c_s, d_s in gaps:
                part, rest = self.forecast.integrate(c_s, d_s)
                total += part
                remaining.extend(rest)
            if _length_s(remaining) < _length_s(gaps):
                source = IntensitySource.FORECAST
            gaps = remaining
        if gaps:
            fallback = self._fallback()
            total += math.fsum((d_s - c_s) * fallback.last_known(c_s) for c_s, d_s in gaps)
            source = IntensitySource.EXTRAPOLATED
        return total, source

    def point(self, t_s: float) -> tuple[float, IntensitySource]:
        """Intensity in g/kWh at one instant, and its source. Raises ForecastUnavailable."""
        self._check()
        value = self.actual.value_at(t_s)
        if value is not None:
            return value, IntensitySource.ACTUAL
        value = self.forecast.value_at(t_s)
        if value is not None:
            return value, IntensitySource.FORECAST
        return self._fallback().last_known(t_s), IntensitySource.EXTRAPOLATED


def _length_s(spans: Iterable[tuple[float, float]]) -> float:
    return math.fsum(d_s - c_s for c_s, d_s in spans)


def profile_emissions_g(
    slices: Iterable[EnergySlice], zone: ZoneIntensity, *, pue: float, shift_s: float = 0.0
) -> tuple[float, IntensitySource]:
    """Grams CO2e of an energy profile run in ``zone`` behind a facility of ``pue``.

    Each slice's energy is spread uniformly over its span; ``shift_s`` moves the whole profile
    in time first (the baseline uses it to start the same profile at submit time). Returns the
    grams and the worst intensity source used. Raises ForecastUnavailable when the zone has no
    data at all.
    """
    parts_g: list[float] = []
    source = IntensitySource.ACTUAL
    for piece in slices:
        a_s = piece.start_s + shift_s
        b_s = max(piece.end_s + shift_s, a_s)
        if b_s > a_s:
            integral, used = zone.integral(a_s, b_s)
            mean_g_per_kwh = integral / (b_s - a_s)
        else:
            mean_g_per_kwh, used = zone.point(a_s)
        parts_g.append(piece.energy_j / J_PER_KWH * pue * mean_g_per_kwh)
        source = worst_source(source, used)
    return math.fsum(parts_g), source

"""Carbon-intensity series on the simulation's time grid, and exact integrals over them.

A native series (any resolution, mixed resolutions, gaps) is piecewise constant: each point holds
from its ``valid_at`` until the next point. The grid resamples it to ``step_s`` either as the
time-weighted mean over each step (``mean``: the energy-correct choice) or as the value in force
at each step's start (``sample``: what Let's Wait Awhile did with ``minute % 30 == 0``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from scheduler.domain import J_PER_KWH, Forecast, IntensityPoint, SeriesKind

FloatArray = npt.NDArray[np.float64]


class Resample(enum.StrEnum):
    MEAN = "mean"
    SAMPLE = "sample"


def epoch_s(when: datetime) -> float:
    """Seconds since the Unix epoch of an aware datetime."""
    if when.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return when.timestamp()


def from_epoch_s(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def series_arrays(series: Forecast) -> tuple[FloatArray, FloatArray, float]:
    """``(valid_at epoch s, g/kWh, end epoch s)`` of a series' points."""
    if not series.points:
        raise ValueError(f"series for {series.zone} has no points")
    times = np.fromiter((epoch_s(p.valid_at) for p in series.points), dtype=np.float64)
    values = np.fromiter((p.g_per_kwh for p in series.points), dtype=np.float64)
    return times, values, float(times[-1] + series.resolution_s)


def resample(
    times_s: FloatArray,
    values: FloatArray,
    end_s: float,
    grid_start_s: float,
    step_s: int,
    n_steps: int,
    how: Resample = Resample.MEAN,
) -> FloatArray:
    """Resample a piecewise-constant series onto ``n_steps`` steps from ``grid_start_s``.

    Raises ValueError when the grid reaches outside ``[times_s[0], end_s]`` (for ``sample``,
    when a step starts outside it).
    """
    grid_end_s = grid_start_s + n_steps * step_s
    last_needed_s = grid_end_s - step_s + 1.0 if how is Resample.SAMPLE else grid_end_s
    if grid_start_s < times_s[0] or last_needed_s > end_s + 1e-6:
        raise ValueError(
            f"carbon series covers {from_epoch_s(times_s[0])} to {from_epoch_s(end_s)}, "
            f"not {from_epoch_s(grid_start_s)} to {from_epoch_s(grid_end_s)}"
        )
    edges = grid_start_s + step_s * np.arange(n_steps + 1, dtype=np.float64)
    if how is Resample.SAMPLE:
        return values[np.searchsorted(times_s, edges[:-1], side="right") - 1].copy()
    knots = np.append(times_s, end_s)
    integral = np.concatenate(([0.0], np.cumsum(values * np.diff(knots))))
    at_edges = np.interp(edges, knots, integral)
    return np.diff(at_edges) / step_s


@dataclass(frozen=True, slots=True)
class CarbonGrid:
    """Actual intensity (g/kWh) per region on a common grid of ``step_s`` from ``start_s``."""

    start_s: float
    step_s: int
    actuals: Mapping[str, FloatArray]

    @property
    def n_steps(self) -> int:
        return len(next(iter(self.actuals.values())))

    @property
    def end_s(self) -> float:
        return self.start_s + self.n_steps * self.step_s

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(self.actuals)

    def index(self, when_s: float) -> int:
        """The step containing ``when_s`` (clamped to the grid)."""
        return int(min(max((when_s - self.start_s) // self.step_s, 0), self.n_steps - 1))

    def time_s(self, index: int) -> float:
        return self.start_s + index * self.step_s

    def emissions_g(
        self,
        region: str,
        starts_s: FloatArray,
        ends_s: FloatArray,
        energy_w: FloatArray,
    ) -> FloatArray:
        """Grams emitted by constant draws ``energy_w`` (W, PUE included) over
        ``[starts_s, ends_s)`` in ``region``, integrating actual intensity exactly."""
        return (
            integrate(self.actuals[region], self.start_s, self.step_s, starts_s, ends_s)
            * energy_w
            / J_PER_KWH
        )


def integrate(
    values: FloatArray,
    start_s: float,
    step_s: int,
    starts_s: FloatArray,
    ends_s: FloatArray,
) -> FloatArray:
    """∫ intensity dt over each ``[starts_s, ends_s)``, in g/kWh x s; vectorised over intervals.

    Raises ValueError for an interval outside the grid.
    """
    end_s = start_s + len(values) * step_s
    if len(starts_s) and (starts_s.min() < start_s - 1e-6 or ends_s.max() > end_s + 1e-6):
        raise ValueError("interval outside the carbon grid")
    knots = start_s + step_s * np.arange(len(values) + 1, dtype=np.float64)
    integral = np.concatenate(([0.0], np.cumsum(values * step_s)))
    result: FloatArray = np.interp(ends_s, knots, integral) - np.interp(starts_s, knots, integral)
    return result


def build_grid(
    series: Mapping[str, Forecast],
    *,
    start: datetime,
    end: datetime,
    step_s: int,
    how: Resample = Resample.MEAN,
) -> CarbonGrid:
    """Resample each region's actual series onto ``[start, end)`` at ``step_s``.

    Raises ValueError when a series does not cover the span.
    """
    n_steps = int((epoch_s(end) - epoch_s(start)) // step_s)
    if n_steps <= 0:
        raise ValueError("empty simulation span")
    actuals = {}
    for region, forecast in series.items():
        times, values, series_end = series_arrays(forecast)
        actuals[region] = resample(times, values, series_end, epoch_s(start), step_s, n_steps, how)
    return CarbonGrid(start_s=epoch_s(start), step_s=step_s, actuals=actuals)


def common_span(series: Sequence[Forecast]) -> tuple[datetime, datetime]:
    """The span every series covers: latest start, earliest end. Raises ValueError if none."""
    starts = [s.start for s in series]
    ends = [s.end for s in series]
    if not series or any(s is None for s in starts) or any(e is None for e in ends):
        raise ValueError("every carbon series needs points")
    start = max(s for s in starts if s is not None)
    end = min(e for e in ends if e is not None)
    if end <= start:
        raise ValueError("the carbon series do not overlap in time")
    return start, end


def grid_series(
    zone: str,
    provider: str,
    values: FloatArray,
    start_s: float,
    step_s: int,
    issued_at: datetime,
    kind: SeriesKind = SeriesKind.FORECAST,
) -> Forecast:
    """A domain series from grid values starting at ``start_s``."""
    start = from_epoch_s(start_s)
    step = timedelta(seconds=step_s)
    points = tuple(
        IntensityPoint(valid_at=start + i * step, g_per_kwh=float(v)) for i, v in enumerate(values)
    )
    return Forecast(
        zone=zone,
        provider=provider,
        kind=kind,
        issued_at=issued_at,
        resolution_s=step_s,
        points=points,
    )

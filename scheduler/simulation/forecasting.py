"""What the simulated planner is told about the future: forecasts on the simulation grid.

Two shapes exist. A *static* forecast has one value per valid time whatever the issue time (the
Let's Wait Awhile model: actual + one seeded Gaussian draw per step; or a file with one forecast
value per hour, like CarbonCast's). *Issued* forecasts change with the issue time (WattTime's
5-minute forecasts). The measured error handed to the planner uses only the past: forecasts whose
valid time is before ``now``, compared with the actuals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from scheduler.domain import Forecast
from scheduler.planning.snapshot import LeadError
from scheduler.simulation.grid import FloatArray, epoch_s, resample, series_arrays

# Below this many past steps the measured error is too noisy to hand to the planner.
MIN_HISTORY_STEPS = 24
_LEAD_BUCKETS_S = (0.0, 3_600.0, 6 * 3_600.0, 24 * 3_600.0, 72 * 3_600.0)
IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class StaticForecast:
    """One forecast value per grid step.

    The error handed to the planner is ``known_mae_g_per_kwh`` when the error model is known
    (a Gaussian of given sigma, or none), else the mean absolute error measured so far (none
    before ``MIN_HISTORY_STEPS`` steps of history).
    """

    values: FloatArray
    actual: FloatArray
    known_mae_g_per_kwh: float | None = None
    _abs_error_sum: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.values.shape != self.actual.shape:
            raise ValueError("forecast and actual must cover the same grid")
        self._abs_error_sum = np.concatenate(([0.0], np.cumsum(np.abs(self.values - self.actual))))

    static = True

    def issue_key(self, now_index: int) -> int:
        """Changes exactly when a new forecast is issued (never, for a static one)."""
        return 0

    def issued_index(self, now_index: int) -> int:
        """Grid step the forecast in force was issued at (a static one is read at ``now``)."""
        return now_index

    def next_issue_index(self, now_index: int) -> int | None:
        """Grid step of the next issue after ``now_index`` (None: no other issue comes)."""
        return None

    def window(self, now_index: int, end_index: int) -> tuple[int, FloatArray]:
        """``(first step, values)`` of the forecast for steps ``[now_index, end_index)``."""
        return now_index, self.values[now_index:end_index]

    def lead_errors(self, now_index: int) -> tuple[LeadError, ...]:
        """The error, the same at every lead (a static forecast's error does not depend on when
        it was read)."""
        if self.known_mae_g_per_kwh is not None:
            mae = self.known_mae_g_per_kwh
        elif now_index >= MIN_HISTORY_STEPS:
            mae = float(self._abs_error_sum[now_index] / now_index)
        else:
            return ()
        return tuple(LeadError(lead_s=lead, mae_g_per_kwh=mae) for lead in _LEAD_BUCKETS_S)


@dataclass(slots=True)
class IssuedForecasts:
    """Forecasts issued over time: at each step the latest issue at or before it is in force.

    ``issue_index[k]`` is the grid step of issue ``k``; ``starts[k]`` the grid step of its first
    value and ``issues[k]`` its values on the grid.
    """

    issue_index: IntArray
    starts: IntArray
    issues: tuple[FloatArray, ...]
    actual: FloatArray
    step_s: int
    # Per lead (s): valid steps in order and the running sum of absolute errors there.
    _errors_by_lead: dict[float, tuple[IntArray, FloatArray]] = field(init=False, repr=False)

    static = False

    def __post_init__(self) -> None:
        valid, leads, errors = [], [], []
        for k, values in enumerate(self.issues):
            steps = int(self.starts[k]) + np.arange(len(values))
            valid.append(steps)
            leads.append((steps - int(self.issue_index[k])) * float(self.step_s))
            errors.append(np.abs(values - self.actual[steps]))
        all_valid, all_leads = np.concatenate(valid), np.concatenate(leads)
        all_errors = np.concatenate(errors)
        self._errors_by_lead = {}
        for lead in np.unique(all_leads).tolist():
            mask = all_leads == lead
            order = np.argsort(all_valid[mask], kind="stable")
            self._errors_by_lead[float(lead)] = (
                all_valid[mask][order],
                np.cumsum(all_errors[mask][order]),
            )

    def _current(self, now_index: int) -> int:
        return int(np.searchsorted(self.issue_index, now_index, side="right")) - 1

    def issue_key(self, now_index: int) -> int:
        return self._current(now_index)

    def issued_index(self, now_index: int) -> int:
        return int(self.issue_index[max(self._current(now_index), 0)])

    def next_issue_index(self, now_index: int) -> int | None:
        k = self._current(now_index) + 1
        return int(self.issue_index[k]) if k < len(self.issue_index) else None

    def window(self, now_index: int, end_index: int) -> tuple[int, FloatArray]:
        """``(first step, values)`` of the issue in force at ``now_index`` within
        ``[now_index, end_index)``: it may start after ``now_index`` (an issue's first point
        is usually a step ahead) and end early; empty when no issue is in force."""
        k = self._current(now_index)
        if k < 0:
            return now_index, np.empty(0)
        first = max(now_index, int(self.starts[k]))
        lo = first - int(self.starts[k])
        return first, self.issues[k][lo : lo + max(end_index - first, 0)]

    def lead_errors(self, now_index: int) -> tuple[LeadError, ...]:
        """Per-lead mean absolute error of past issues over valid steps before ``now_index``."""
        result = []
        for lead, (valid, cumulative) in self._errors_by_lead.items():
            n = int(np.searchsorted(valid, now_index, side="left"))
            if n >= MIN_HISTORY_STEPS:
                result.append(LeadError(lead_s=lead, mae_g_per_kwh=float(cumulative[n - 1] / n)))
        return tuple(result)


ForecastModel = StaticForecast | IssuedForecasts


def perfect_forecast(actual: FloatArray) -> StaticForecast:
    """Forecast = actual (zero error)."""
    return StaticForecast(values=actual.copy(), actual=actual, known_mae_g_per_kwh=0.0)


def gaussian_forecast(
    actual: FloatArray,
    sigma_fraction: float,
    rng: np.random.Generator,
) -> StaticForecast:
    """Actual + one N(0, sigma) draw per step, sigma = ``sigma_fraction`` x mean ``actual``.

    This is Let's Wait Awhile's error model (``ci + rng.normal(0, error * ci.mean(), len(ci))``):
    with ``rng = default_rng(seed)`` over the same series it draws the same noise. Values are
    clipped at 0 g/kWh.
    """
    if sigma_fraction < 0:
        raise ValueError("sigma_fraction must be non-negative")
    sigma = sigma_fraction * float(actual.mean())
    noisy = actual + rng.normal(0.0, sigma, size=len(actual))
    return StaticForecast(
        values=np.maximum(noisy, 0.0),
        actual=actual,
        # E|N(0, sigma)| = sigma x sqrt(2/pi): the planner is told the true error.
        known_mae_g_per_kwh=sigma * math.sqrt(2.0 / math.pi),
    )


def series_forecast(actual: FloatArray, forecast: FloatArray) -> StaticForecast:
    """A static forecast given on the same grid as ``actual``."""
    return StaticForecast(values=np.maximum(forecast, 0.0), actual=actual)


def issued_forecasts(
    actual: FloatArray,
    forecasts: Sequence[Forecast],
    grid_start_s: float,
    step_s: int,
) -> IssuedForecasts:
    """Issued forecasts (each a domain ``Forecast``) resampled onto the grid.

    An issue's values start at the first grid step wholly inside it; issues outside the grid or
    shorter than one step are dropped. Raises ValueError when none is left.
    """
    n_steps = len(actual)
    rows: list[tuple[int, int, FloatArray]] = []
    for fc in sorted(forecasts, key=lambda f: f.issued_at):
        times, values, end_s = series_arrays(fc)
        first = math.ceil((times[0] - grid_start_s) / step_s)
        last = min(math.floor((end_s - grid_start_s) / step_s), n_steps)
        issue = math.ceil((epoch_s(fc.issued_at) - grid_start_s) / step_s)
        if last - first < 1 or first < 0 or issue >= n_steps:
            continue
        grid_values = resample(
            times, values, end_s, grid_start_s + first * step_s, step_s, last - first
        )
        rows.append((max(issue, 0), first, grid_values))
    if not rows:
        raise ValueError("no issued forecast overlaps the simulation grid")
    return IssuedForecasts(
        issue_index=np.array([r[0] for r in rows], dtype=np.int64),
        starts=np.array([r[1] for r in rows], dtype=np.int64),
        issues=tuple(r[2] for r in rows),
        actual=actual,
        step_s=step_s,
    )

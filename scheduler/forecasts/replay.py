"""The offline default: real carbon-intensity traces replayed against the scheduler's clock.

Scheduler time ``t`` maps to trace time ``trace_start + (t - anchor)``, wrapping around the
trace (a year) so replay never runs out. Actuals are the trace itself. Forecasts are the trace
over ``[now, now + horizon)`` plus Gaussian error whose standard deviation, as a share of the
trace's mean, grows linearly with lead time (``error_per_day`` per 24 h of lead); the error is
seeded by ``(seed, zone, issued time)``, so the same question always gets the same answer.

The bundled traces (``traces/``, Electricity Maps, ODbL) cover ``DE``, ``ES`` and
``US-CAL-CISO`` for 2023 at 1 h.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from scheduler.domain import ConfigError, Forecast, IntensityPoint, ProviderError, SeriesKind
from scheduler.domain.forecasts import MAX_PLAUSIBLE_G_PER_KWH, MIN_PLAUSIBLE_G_PER_KWH
from scheduler.forecasts.trace_files import load_carbon_trace

PROVIDER = "replay"
TRACES_DIR = Path(__file__).resolve().parent / "traces"
BUNDLED_TRACES = {
    "DE": "DE_2023_hourly.csv",
    "ES": "ES_2023_hourly.csv",
    "US-CAL-CISO": "US-CAL-CISO_2023_hourly.csv",
}
S_PER_DAY = 86_400.0
_UINT64 = 2**64 - 1


def trace_path(zone: str, traces_dir: Path | None = None) -> Path:
    """The trace file for ``zone``: a bundled one, or ``<traces_dir>/<zone>*.csv``.

    Raises ProviderError (not retryable) when there is none.
    """
    directory = traces_dir or TRACES_DIR
    bundled = BUNDLED_TRACES.get(zone)
    if bundled and (directory / bundled).exists():
        return directory / bundled
    candidates = sorted(directory.glob(f"{zone}_*.csv")) + sorted(directory.glob(f"{zone}.csv"))
    if not candidates:
        raise ProviderError(PROVIDER, f"no trace for zone {zone!r} in {directory}", retryable=False)
    return candidates[0]


def load_trace(path_or_zone: str | Path, traces_dir: Path | None = None) -> Forecast:
    """A trace as actuals (``kind=ACTUAL``): a bundled zone (``"DE"``) or a CSV path in any
    format :func:`scheduler.forecasts.trace_files.load_carbon_trace` reads.

    Raises ProviderError for an unknown zone, ConfigError for an unreadable file.
    """
    candidate = Path(path_or_zone)
    if candidate.suffix.lower() == ".csv" or candidate.exists():
        return _load_cached(candidate.resolve())
    return _load_cached(trace_path(str(path_or_zone), traces_dir).resolve())


@functools.lru_cache(maxsize=32)
def _load_cached(path: Path) -> Forecast:
    return load_carbon_trace(path)


@dataclass(frozen=True, slots=True)
class _Grid:
    """A trace on a regular grid: ``values[k]`` is valid from ``origin + k * step_s``."""

    origin: datetime
    step_s: int
    values: npt.NDArray[np.float64]
    mean_g_per_kwh: float


def _grid(trace: Forecast) -> _Grid:
    """Lay the trace on a gap-free grid, carrying the last value over any gap, so indexing by
    time modulo the trace length is exact."""
    if not trace.points:
        raise ConfigError(f"trace for zone {trace.zone!r} is empty")
    origin = trace.points[0].valid_at
    step_s = trace.resolution_s
    offsets = np.array(
        [(p.valid_at - origin).total_seconds() // step_s for p in trace.points], dtype=np.int64
    )
    raw = np.array([p.g_per_kwh for p in trace.points], dtype=np.float64)
    source = np.full(int(offsets[-1]) + 1, -1, dtype=np.int64)
    source[offsets] = np.arange(len(offsets))
    # Points are sorted, so a running maximum carries each point's index over the gap after it.
    values = raw[np.maximum.accumulate(source)]
    return _Grid(origin, step_s, values, float(values.mean()))


class ReplayProvider:
    """Forecasts and actuals replayed from traces. Thread-safe (immutable after loading).

    ``trace_start`` is the trace moment that scheduler time ``anchor`` maps to. ``horizon_h``
    bounds forecasts; ``error_per_day`` is the forecast error's sigma, as a share of the trace
    mean, per 24 h of lead time; ``seed`` makes errors reproducible. ``traces_dir`` replaces the
    bundled traces. Raises ProviderError (not retryable) for a zone it has no trace for.
    """

    name = PROVIDER

    def __init__(
        self,
        trace_start: datetime,
        anchor: datetime,
        horizon_h: float = 48.0,
        error_per_day: float = 0.08,
        seed: int = 0,
        traces_dir: Path | None = None,
    ) -> None:
        if trace_start.tzinfo is None or anchor.tzinfo is None:
            raise ConfigError("replay trace_start and anchor must be timezone-aware")
        if horizon_h <= 0 or error_per_day < 0:
            raise ConfigError("replay horizon_h must be > 0 and error_per_day >= 0")
        self.trace_start = trace_start.astimezone(UTC)
        self.anchor = anchor.astimezone(UTC)
        self.horizon_s = horizon_h * 3600.0
        self.error_per_day = error_per_day
        self.seed = seed
        self.traces_dir = traces_dir
        self._grids: dict[str, _Grid] = {}

    @property
    def zones(self) -> tuple[str, ...]:
        """Zones with a trace (the bundled ones, or the files in ``traces_dir``)."""
        if self.traces_dir is None:
            return tuple(BUNDLED_TRACES)
        return tuple(sorted({p.stem.split("_")[0] for p in self.traces_dir.glob("*.csv")}))

    def forecast(self, zone: str, now: datetime) -> Forecast:
        grid = self._grid(zone)
        first = self._slot(grid, now)
        last = math.ceil(
            self._offset_s(grid, now + timedelta(seconds=self.horizon_s)) / grid.step_s
        )
        slots = np.arange(first, max(last, first + 1), dtype=np.int64)
        starts = [self._time_of(grid, int(k)) for k in slots]
        lead_s = np.array([max(0.0, (t - now).total_seconds()) for t in starts])
        sigma = self.error_per_day * (lead_s / S_PER_DAY) * grid.mean_g_per_kwh
        noise = self._rng(zone, now).standard_normal(len(slots)) * sigma
        values = np.clip(
            grid.values[slots % len(grid.values)] + noise,
            MIN_PLAUSIBLE_G_PER_KWH,
            MAX_PLAUSIBLE_G_PER_KWH,
        )
        return self._series(zone, SeriesKind.FORECAST, now, grid, starts, values)

    def actuals(self, zone: str, start: datetime, end: datetime) -> Forecast:
        grid = self._grid(zone)
        first = self._slot(grid, start)
        last = math.ceil(self._offset_s(grid, end) / grid.step_s)
        if last <= first:
            raise ProviderError(PROVIDER, f"empty window [{start}, {end}) for zone {zone!r}")
        slots = np.arange(first, last, dtype=np.int64)
        starts = [self._time_of(grid, int(k)) for k in slots]
        values = grid.values[slots % len(grid.values)]
        return self._series(zone, SeriesKind.ACTUAL, end, grid, starts, values)

    def trace_time(self, when: datetime) -> datetime:
        """The (unwrapped) trace moment scheduler time ``when`` maps to."""
        return self.trace_start + (when - self.anchor)

    def _grid(self, zone: str) -> _Grid:
        grid = self._grids.get(zone)
        if grid is None:
            grid = _grid(load_trace(trace_path(zone, self.traces_dir)))
            self._grids[zone] = grid  # a racing duplicate load is harmless: same content
        return grid

    def _offset_s(self, grid: _Grid, when: datetime) -> float:
        return (self.trace_time(when) - grid.origin).total_seconds()

    def _slot(self, grid: _Grid, when: datetime) -> int:
        """The unwrapped index of the trace slot containing scheduler time ``when``."""
        return math.floor(self._offset_s(grid, when) / grid.step_s)

    def _time_of(self, grid: _Grid, slot: int) -> datetime:
        """Scheduler time at which unwrapped trace slot ``slot`` begins."""
        return self.anchor + (
            grid.origin + timedelta(seconds=slot * grid.step_s) - self.trace_start
        )

    def _rng(self, zone: str, issued_at: datetime) -> np.random.Generator:
        micros = round(issued_at.timestamp() * 1_000_000)
        entropy = [self.seed & _UINT64, zlib.crc32(zone.encode()), micros & _UINT64]
        return np.random.default_rng(np.random.SeedSequence(entropy))

    @staticmethod
    def _series(
        zone: str,
        kind: SeriesKind,
        issued_at: datetime,
        grid: _Grid,
        starts: list[datetime],
        values: npt.NDArray[np.float64],
    ) -> Forecast:
        return Forecast(
            zone=zone,
            provider=PROVIDER,
            kind=kind,
            issued_at=issued_at,
            resolution_s=grid.step_s,
            points=tuple(
                IntensityPoint(valid_at=t, g_per_kwh=float(v))
                for t, v in zip(starts, values, strict=True)
            ),
        )

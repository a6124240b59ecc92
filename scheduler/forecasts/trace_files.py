"""Readers for the carbon-intensity trace files used by replay and simulation.

Formats, recognised by their header row:

- Electricity Maps data portal export: ``Datetime (UTC)``, ..., ``Carbon Intensity gCO₂eq/kWh
  (LCA)`` (the life-cycle column is read; a file reduced to a subset of columns works too);
- Let's Wait Awhile: ``Time,Carbon Intensity``;
- vessim's WattTime MOER actuals: ``time,<Region>``; forecasts:
  ``request_time,forecast_time,<Region>`` (already g/kWh, marginal);
- CarbonCast (roro-experiments): ``UTC time,carbon_intensity,avg_carbon_intensity_forecast``.

Naive timestamps are UTC. Steps shorter than the file's usual one are kept; a trace whose step
changes part-way (Let's Wait Awhile ``gb_ci.csv`` goes from 30 to 15 min) is forward-filled onto
the finest step, so every point stays valid for exactly ``resolution_s``. Longer gaps (a missing
day) stay gaps. Every reader raises ConfigError for a file it cannot read as a trace.
"""

from __future__ import annotations

import bisect
import csv
import enum
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler.domain import (
    ConfigError,
    Forecast,
    IntensityPoint,
    ProviderError,
    SeriesKind,
    Signal,
)
from scheduler.forecasts.validation import build_series

# Steps up to this many times the finest one are forward-filled; longer ones are gaps.
MAX_FILL_FACTOR = 4
CARBONCAST_ISSUE_EVERY_S = 24 * 3600.0
CARBONCAST_HORIZON_S = 48 * 3600.0
# Let's Wait Awhile names files by country; map them to Electricity Maps-style zone ids.
LWA_ZONES = {"ger": "DE", "gb": "GB", "fr": "FR", "cal": "US-CAL-CISO"}


class TraceFormat(enum.StrEnum):
    ELECTRICITYMAPS_PORTAL = "electricitymaps-portal"
    LETS_WAIT_AWHILE = "lets-wait-awhile"
    VESSIM_ACTUAL = "vessim-actual"
    VESSIM_FORECAST = "vessim-forecast"
    CARBONCAST = "carboncast"


@dataclass(frozen=True, slots=True)
class _Table:
    path: Path
    header: list[str]
    rows: list[list[str]]


def _read(path: Path) -> _Table:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            rows = [row for row in reader if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"cannot read trace {path}: {error}") from error
    if not header:
        raise ConfigError(f"trace {path} is empty")
    return _Table(path, header, rows)


def detect_format(header: Sequence[str]) -> TraceFormat:
    """The trace format a CSV header row belongs to; raises ConfigError when unknown."""
    if header and header[0] == "Datetime (UTC)" and any(h.endswith("(LCA)") for h in header):
        return TraceFormat.ELECTRICITYMAPS_PORTAL
    if list(header[:2]) == ["Time", "Carbon Intensity"]:
        return TraceFormat.LETS_WAIT_AWHILE
    if len(header) == 2 and header[0] == "time":
        return TraceFormat.VESSIM_ACTUAL
    if len(header) == 3 and list(header[:2]) == ["request_time", "forecast_time"]:
        return TraceFormat.VESSIM_FORECAST
    if list(header[:3]) == ["UTC time", "carbon_intensity", "avg_carbon_intensity_forecast"]:
        return TraceFormat.CARBONCAST
    raise ConfigError(f"unrecognised carbon trace header {list(header)!r}")


def _time(table: _Table, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise ConfigError(f"{table.path}: bad timestamp {value!r}") from error
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _number(table: _Table, value: str) -> float:
    try:
        return float(value)
    except ValueError as error:
        raise ConfigError(f"{table.path}: bad intensity {value!r}") from error


def _column(table: _Table, name: str) -> int:
    try:
        return table.header.index(name)
    except ValueError as error:
        raise ConfigError(f"{table.path}: no column {name!r}") from error


def _series(
    table: _Table,
    *,
    zone: str,
    provider: str,
    kind: SeriesKind,
    points: Iterable[tuple[datetime, float]],
    signal: Signal = Signal.AVERAGE,
    issued_at: datetime | None = None,
    resolution_s: float | None = None,
) -> Forecast:
    pairs = sorted(points)
    if not pairs:
        raise ConfigError(f"trace {table.path} has no data rows")
    try:
        series = build_series(
            provider=provider,
            zone=zone,
            kind=kind,
            signal=signal,
            resolution_s=resolution_s,
            issued_at=issued_at or pairs[-1][0],
            points=pairs,
        )
    except ProviderError as error:
        raise ConfigError(f"trace {table.path}: {error.message}") from error
    return series if kind is SeriesKind.FORECAST else _regularise(series)


def _regularise(series: Forecast) -> Forecast:
    """Forward-fill steps of up to MAX_FILL_FACTOR x the finest one onto the finest step."""
    step = timedelta(seconds=series.resolution_s)
    filled: list[IntensityPoint] = []
    for point, following in zip(series.points, (*series.points[1:], None), strict=True):
        filled.append(point)
        if following is None:
            continue
        gap = following.valid_at - point.valid_at
        if step < gap <= step * MAX_FILL_FACTOR:
            at = point.valid_at + step
            while at < following.valid_at:
                filled.append(IntensityPoint(valid_at=at, g_per_kwh=point.g_per_kwh))
                at += step
    if len(filled) == len(series.points):
        return series
    return Forecast(
        zone=series.zone,
        provider=series.provider,
        kind=series.kind,
        issued_at=series.issued_at,
        resolution_s=series.resolution_s,
        points=tuple(filled),
        signal=series.signal,
    )


def _em_portal(table: _Table, zone: str | None) -> Forecast:
    when = _column(table, "Datetime (UTC)")
    value = next(i for i, h in enumerate(table.header) if h.endswith("(LCA)"))
    if zone is None and "Zone Id" in table.header and table.rows:
        zone = table.rows[0][table.header.index("Zone Id")]
    zone = zone or table.path.stem.split("_")[0]
    return _series(
        table,
        zone=zone,
        provider="electricitymaps",
        kind=SeriesKind.ACTUAL,
        points=((_time(table, r[when]), _number(table, r[value])) for r in table.rows),
    )


def _lets_wait_awhile(table: _Table, zone: str | None) -> Forecast:
    stem = table.path.stem.removesuffix("_ci")
    return _series(
        table,
        zone=zone or LWA_ZONES.get(stem, stem.upper()),
        provider="lets-wait-awhile",
        kind=SeriesKind.ACTUAL,
        points=((_time(table, r[0]), _number(table, r[1])) for r in table.rows),
    )


def _vessim_actual(table: _Table, zone: str | None) -> Forecast:
    return _series(
        table,
        zone=zone or table.header[1].upper(),
        provider="watttime",
        kind=SeriesKind.ACTUAL,
        signal=Signal.MARGINAL,
        points=((_time(table, r[0]), _number(table, r[1])) for r in table.rows),
    )


def _carboncast_zone(table: _Table, zone: str | None) -> str:
    match = re.fullmatch(r"Forecasts(\w+)", table.path.stem)
    return zone or (match.group(1) if match else table.path.stem)


def _carboncast_actual(table: _Table, zone: str | None) -> Forecast:
    return _series(
        table,
        zone=_carboncast_zone(table, zone),
        provider="carboncast",
        kind=SeriesKind.ACTUAL,
        points=((_time(table, r[0]), _number(table, r[1])) for r in table.rows),
    )


def load_carbon_trace(path: Path, *, zone: str | None = None) -> Forecast:
    """The actual intensity series in a trace file of any supported format (``kind=ACTUAL``,
    ``issued_at`` = its last timestamp). ``zone`` overrides the zone read from the file.

    Raises ConfigError for unreadable or unknown files, and for vessim forecast files (use
    :func:`load_forecast_trace`).
    """
    table = _read(Path(path))
    kind = detect_format(table.header)
    if kind is TraceFormat.ELECTRICITYMAPS_PORTAL:
        return _em_portal(table, zone)
    if kind is TraceFormat.LETS_WAIT_AWHILE:
        return _lets_wait_awhile(table, zone)
    if kind is TraceFormat.VESSIM_ACTUAL:
        return _vessim_actual(table, zone)
    if kind is TraceFormat.CARBONCAST:
        return _carboncast_actual(table, zone)
    raise ConfigError(f"{path} holds issued forecasts, not actuals: use load_forecast_trace")


def load_forecast_trace(
    path: Path,
    *,
    zone: str | None = None,
    carboncast_issue_every_s: float = CARBONCAST_ISSUE_EVERY_S,
    carboncast_horizon_s: float = CARBONCAST_HORIZON_S,
) -> list[Forecast]:
    """The forecasts issued in a trace file, oldest issue first.

    vessim: one forecast per ``request_time``. CarbonCast: ``avg_carbon_intensity_forecast`` is
    day-ahead, so one forecast is issued every ``carboncast_issue_every_s`` from the first
    midnight, covering ``carboncast_horizon_s`` from its issue time. Raises ConfigError for
    files without forecasts.
    """
    table = _read(Path(path))
    kind = detect_format(table.header)
    if kind is TraceFormat.VESSIM_FORECAST:
        return _vessim_forecasts(table, zone)
    if kind is TraceFormat.CARBONCAST:
        return _carboncast_forecasts(table, zone, carboncast_issue_every_s, carboncast_horizon_s)
    raise ConfigError(f"{path} ({kind}) holds no issued forecasts")


def _vessim_forecasts(table: _Table, zone: str | None) -> list[Forecast]:
    zone = zone or table.header[2].upper()
    groups: dict[datetime, list[tuple[datetime, float]]] = {}
    for row in table.rows:
        issued = _time(table, row[0])
        groups.setdefault(issued, []).append((_time(table, row[1]), _number(table, row[2])))
    steps_s = [
        (b[0] - a[0]).total_seconds()
        for points in groups.values()
        for a, b in itertools.pairwise(points)
    ]
    step_s = min((s for s in steps_s if s > 0), default=None)
    return [
        _series(
            table,
            zone=zone,
            provider="watttime",
            kind=SeriesKind.FORECAST,
            signal=Signal.MARGINAL,
            issued_at=issued,
            points=points,
            resolution_s=step_s,
        )
        for issued, points in sorted(groups.items())
    ]


def _carboncast_forecasts(
    table: _Table,
    zone: str | None,
    issue_every_s: float,
    horizon_s: float,
) -> list[Forecast]:
    if issue_every_s <= 0 or horizon_s <= 0:
        raise ConfigError("CarbonCast issue period and horizon must be positive")
    rows = sorted((_time(table, r[0]), _number(table, r[2])) for r in table.rows)
    if not rows:
        raise ConfigError(f"trace {table.path} has no data rows")
    times = [t for t, _ in rows]
    steps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
    step_s = min((s for s in steps if s > 0), default=None)
    zone = _carboncast_zone(table, zone)
    issued = times[0].replace(hour=0, minute=0, second=0, microsecond=0)
    every, horizon = timedelta(seconds=issue_every_s), timedelta(seconds=horizon_s)
    forecasts = []
    while issued <= times[-1]:
        lo = bisect.bisect_left(times, issued)
        hi = bisect.bisect_left(times, issued + horizon)
        if hi > lo:
            forecasts.append(
                _series(
                    table,
                    zone=zone,
                    provider="carboncast",
                    kind=SeriesKind.FORECAST,
                    issued_at=issued,
                    points=rows[lo:hi],
                    resolution_s=step_s,
                )
            )
        issued += every
    return forecasts

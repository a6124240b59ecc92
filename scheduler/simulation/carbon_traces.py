"""Carbon-intensity traces for the simulator: known formats detected by header, any other CSV
mapped by hand (``--carbon-columns time=…,intensity=…``), values converted to g/kWh.

Formats detected (naive times are UTC unless ``--carbon-tz`` says otherwise):

- ``electricitymaps-portal``: ``Datetime (UTC)`` … ``Carbon Intensity gCO₂eq/kWh (LCA)``;
- ``lets-wait-awhile``: ``Time,Carbon Intensity``;
- ``vessim-watttime``: ``time,<Region>`` (vessim's WattTime MOER export, already g/kWh);
- ``carboncast``: ``UTC time`` and ``carbon_intensity`` among other columns (the
  roro-experiments forecast file, and CarbonCast's own output: a first unnamed index column,
  then per-source generation columns);
- ``watttime``: ``point_time,value`` (the WattTime client's CSV, in lbs CO2/MWh; a
  ``generated_at`` column marks issued forecasts, which are refused as actuals).

Each point holds until the next one (a gap keeps the last value, as in ``grid.resample``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from scheduler.domain import Forecast, SeriesKind, Signal
from scheduler.domain.forecasts import MAX_PLAUSIBLE_G_PER_KWH, MIN_PLAUSIBLE_G_PER_KWH
from scheduler.forecasts.trace_files import LWA_ZONES
from scheduler.forecasts.validation import build_series
from scheduler.forecasts.watttime import G_PER_KWH_PER_LBS_PER_MWH
from scheduler.simulation.trace_input import (
    TIME_EXPECTED,
    CsvTable,
    SimulationInputError,
    cells,
    missing_columns,
    parse_columns,
    parse_number,
    parse_time,
    read_csv,
    row_message,
)


class CarbonUnit(enum.StrEnum):
    G_PER_KWH = "g/kWh"
    LBS_PER_MWH = "lbs/MWh"
    KG_PER_MWH = "kg/MWh"


# g/kWh per unit: 1 kg/MWh = 1,000 g / 1,000 kWh = 1 g/kWh.
G_PER_KWH_PER_UNIT: Mapping[CarbonUnit, float] = {
    CarbonUnit.G_PER_KWH: 1.0,
    CarbonUnit.LBS_PER_MWH: G_PER_KWH_PER_LBS_PER_MWH,
    CarbonUnit.KG_PER_MWH: 1.0,
}


class CarbonFormat(enum.StrEnum):
    ELECTRICITYMAPS_PORTAL = "electricitymaps-portal"
    LETS_WAIT_AWHILE = "lets-wait-awhile"
    VESSIM_WATTTIME = "vessim-watttime"
    CARBONCAST = "carboncast"
    WATTTIME = "watttime"
    MAPPED = "mapped"


ACCEPTED_CARBON_FORMATS = (
    "Electricity Maps portal (Datetime (UTC), …, Carbon Intensity gCO₂eq/kWh (LCA)), "
    "Let's Wait Awhile (Time,Carbon Intensity), vessim WattTime (time,<Region>), "
    "CarbonCast (UTC time,carbon_intensity,…), WattTime (point_time,value), "
    "or any CSV mapped with --carbon-columns time=…,intensity=…"
)
CARBON_KEYS = ("time", "intensity")
_WATTTIME_NAME = re.compile(r"(.+?)_(co2_moer|co2_aoer|health_damage)(_.*)?")


@dataclass(frozen=True, slots=True, kw_only=True)
class CarbonTrace:
    """One region's actual intensity (g/kWh) and where it came from."""

    path: Path
    format: CarbonFormat
    unit: CarbonUnit
    series: Forecast


@dataclass(frozen=True, slots=True, kw_only=True)
class CarbonReading:
    """How to read carbon files: a column mapping (None: detect), the unit (None: the
    format's own) and the zone of naive times."""

    columns: Mapping[str, str] | None = None
    unit: CarbonUnit | None = None
    zone: tzinfo = UTC


def parse_carbon_columns(text: str) -> dict[str, str]:
    """``--carbon-columns time=…,intensity=…``; raises SimulationInputError."""
    return parse_columns(
        text, option="--carbon-columns", keys=CARBON_KEYS, required=(("time",), ("intensity",))
    )


@dataclass(frozen=True, slots=True)
class _Layout:
    format: CarbonFormat
    time: str
    value: str
    unit: CarbonUnit
    zone: str
    signal: Signal = Signal.AVERAGE


def _detect(table: CsvTable) -> _Layout | None:
    header, stem = table.header, table.path.stem
    if header[0] == "Datetime (UTC)":
        value = next((h for h in header if h.endswith("(LCA)")), None)
        if value is not None:
            zone = stem.split("_")[0]
            if "Zone Id" in header and table.rows:
                zone = next(cells(table, table.column("Zone Id")))[1] or zone
            fmt = CarbonFormat.ELECTRICITYMAPS_PORTAL
            return _Layout(fmt, header[0], value, CarbonUnit.G_PER_KWH, zone)
    if header[:2] == ("Time", "Carbon Intensity"):
        name = stem.removesuffix("_ci")
        zone = LWA_ZONES.get(name, name.upper())
        fmt = CarbonFormat.LETS_WAIT_AWHILE
        return _Layout(fmt, "Time", "Carbon Intensity", CarbonUnit.G_PER_KWH, zone)
    if len(header) == 2 and header[0] == "time":
        fmt, unit = CarbonFormat.VESSIM_WATTTIME, CarbonUnit.G_PER_KWH
        return _Layout(fmt, "time", header[1], unit, header[1].upper(), Signal.MARGINAL)
    if "UTC time" in header and "carbon_intensity" in header:
        match = re.fullmatch(r"Forecasts(\w+)|(\w+?)_(direct|lifecycle)_emissions", stem)
        zone = next((g for g in match.groups()[:2] if g), stem) if match else stem
        fmt = CarbonFormat.CARBONCAST
        return _Layout(fmt, "UTC time", "carbon_intensity", CarbonUnit.G_PER_KWH, zone)
    if "point_time" in header and "value" in header:
        if "generated_at" in header:
            raise SimulationInputError(
                "a WattTime forecast file (generated_at, point_time, value): expected actuals "
                "(point_time, value), as WattTime's historical CSV holds them",
                table.path,
            )
        match = _WATTTIME_NAME.fullmatch(stem)
        zone = match.group(1) if match else stem
        signal = Signal.AVERAGE if match and match.group(2) == "co2_aoer" else Signal.MARGINAL
        fmt, unit = CarbonFormat.WATTTIME, CarbonUnit.LBS_PER_MWH
        return _Layout(fmt, "point_time", "value", unit, zone, signal)
    return None


def _layout(table: CsvTable, reading: CarbonReading) -> _Layout:
    if reading.columns is not None:
        missing = missing_columns(table, reading.columns)
        if not missing:
            time, value = reading.columns["time"], reading.columns["intensity"]
            return _Layout(CarbonFormat.MAPPED, time, value, CarbonUnit.G_PER_KWH, table.path.stem)
    detected = _detect(table)
    if detected is not None:
        return detected
    if reading.columns is not None:
        raise SimulationInputError(
            f"no column {missing[0]!r} (from --carbon-columns) among {list(table.header)}",
            table.path,
        )
    if len(table.header) >= 3 and table.header[:2] == ("request_time", "forecast_time"):
        raise SimulationInputError(
            "a vessim forecast file (request_time, forecast_time, …): expected actuals; "
            f"accepted formats: {ACCEPTED_CARBON_FORMATS}",
            table.path,
        )
    raise SimulationInputError(
        f"unrecognised carbon trace columns {list(table.header)}: "
        f"accepted formats: {ACCEPTED_CARBON_FORMATS}",
        table.path,
    )


def read_carbon_trace(path: Path, reading: CarbonReading | None = None) -> CarbonTrace:
    """The actual series in ``path``, in g/kWh; raises SimulationInputError naming the file,
    and the row and column of a bad value."""
    reading = reading or CarbonReading()
    table = read_csv(Path(path), "carbon trace")
    layout = _layout(table, reading)
    unit = reading.unit or layout.unit
    factor = G_PER_KWH_PER_UNIT[unit]
    times = dict(cells(table, table.column(layout.time)))
    points: list[tuple[datetime, float]] = []
    for number, cell in cells(table, table.column(layout.value)):
        when = parse_time(times[number], reading.zone)
        if when is None:
            message = row_message(number, layout.time, TIME_EXPECTED, times[number])
            raise SimulationInputError(message, table.path)
        value = parse_number(cell)
        if value is None:
            message = row_message(number, layout.value, f"an intensity in {unit}", cell)
            raise SimulationInputError(message, table.path)
        points.append((when, _plausible(table, number, layout.value, value * factor, unit)))
    if not points:
        raise SimulationInputError("no data rows: expected one row per time step", table.path)
    series = build_series(
        provider=layout.format.value,
        zone=layout.zone,
        kind=SeriesKind.ACTUAL,
        signal=layout.signal,
        issued_at=max(t for t, _ in points),
        points=points,
    )
    return CarbonTrace(path=table.path, format=layout.format, unit=unit, series=series)


def _plausible(table: CsvTable, row: int, column: str, g_per_kwh: float, unit: CarbonUnit) -> float:
    if MIN_PLAUSIBLE_G_PER_KWH <= g_per_kwh <= MAX_PLAUSIBLE_G_PER_KWH:
        return g_per_kwh
    expected = (
        f"an intensity of {MIN_PLAUSIBLE_G_PER_KWH:g} to {MAX_PLAUSIBLE_G_PER_KWH:g} g/kWh "
        f"once read as {unit} (is --carbon-unit right?)"
    )
    message = row_message(row, column, expected, f"{g_per_kwh:g} g/kWh")
    raise SimulationInputError(message, table.path)

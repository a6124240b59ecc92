"""Carbon traces for the simulator: every format detected from small files written here, the same
files mapped by hand with ``--carbon-columns``, unit and time-zone conversions, and every refusal
word for word (the file, the row, the column, what was expected, the formats accepted)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.domain import Signal
from scheduler.forecasts.trace_files import load_carbon_trace
from scheduler.forecasts.watttime import G_PER_KWH_PER_LBS_PER_MWH
from scheduler.simulation.carbon_traces import (
    ACCEPTED_CARBON_FORMATS,
    CarbonFormat,
    CarbonReading,
    CarbonUnit,
    parse_carbon_columns,
    read_carbon_trace,
)
from scheduler.simulation.trace_input import SimulationInputError, time_zone
from tests.shared_data import SHARED_DATA, requires_shared_data

T0 = datetime(2023, 6, 1, tzinfo=UTC)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _values(path: Path, reading: CarbonReading | None = None) -> list[tuple[datetime, float]]:
    series = read_carbon_trace(path, reading).series
    return [(p.valid_at, p.g_per_kwh) for p in series.points]


EM = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
    "Data Source,Data Estimated,Data Estimation Method\n"
    "2023-06-01 00:00:00,Germany,Germany,DE,152.03,199.59,82.97,77.71,entsoe.eu,false,\n"
    "2023-06-01 01:00:00,Germany,Germany,DE,151.04,198.38,83.24,78.35,entsoe.eu,false,\n"
)
LWA = "Time,Carbon Intensity\n2023-06-01 00:00:00,218.5\n2023-06-01 00:15:00,217.25\n"
VESSIM = "time,Caiso_North\n2023-06-01 00:00:00,425.5\n2023-06-01 00:05:00,432.25\n"
CARBONCAST_OUTPUT = (
    ",UTC time,carbon_intensity,coal,nat_gas,nuclear,oil,hydro,solar,wind,other\n"
    "0,2023-06-01 00:00:00,164.27,9.0,6574.0,2273.0,88.0,2403.0,1222.0,2497.0,0.0\n"
    "1,2023-06-01 01:00:00,200.72,11.0,9094.0,2274.0,87.0,3328.0,0.0,2187.0,0.0\n"
)
CARBONCAST_FORECASTS = (
    "UTC time,carbon_intensity,avg_carbon_intensity_forecast\n"
    "2023-06-01 00:00:00,164.27,84.46\n2023-06-01 01:00:00,200.72,112.97\n"
)
WATTTIME = "point_time,value\n2023-06-01 00:00:00+00:00,870.0\n2023-06-01 00:05:00+00:00,860.0\n"


@pytest.mark.parametrize(
    ("name", "text", "fmt", "zone", "first", "second"),
    [
        ("DE_2023_hourly.csv", EM, CarbonFormat.ELECTRICITYMAPS_PORTAL, "DE", 199.59, 198.38),
        ("ger_ci.csv", LWA, CarbonFormat.LETS_WAIT_AWHILE, "DE", 218.5, 217.25),
        ("caiso.csv", VESSIM, CarbonFormat.VESSIM_WATTTIME, "CAISO_NORTH", 425.5, 432.25),
        (
            "CISO_direct_emissions.csv",
            CARBONCAST_OUTPUT,
            CarbonFormat.CARBONCAST,
            "CISO",
            164.27,
            200.72,
        ),
        (
            "ForecastsCISO.csv",
            CARBONCAST_FORECASTS,
            CarbonFormat.CARBONCAST,
            "CISO",
            164.27,
            200.72,
        ),
        (
            "CAISO_NORTH_co2_moer_2023-06-01_2023-06-02.csv",
            WATTTIME,
            CarbonFormat.WATTTIME,
            "CAISO_NORTH",
            870.0 * G_PER_KWH_PER_LBS_PER_MWH,
            860.0 * G_PER_KWH_PER_LBS_PER_MWH,
        ),
    ],
)
def test_each_format_is_detected_from_its_header(
    tmp_path: Path,
    name: str,
    text: str,
    fmt: CarbonFormat,
    zone: str,
    first: float,
    second: float,
) -> None:
    trace = read_carbon_trace(_write(tmp_path, name, text))
    assert trace.format is fmt
    assert trace.series.zone == zone
    (t1, v1), (t2, v2) = _values(trace.path)
    assert t1 == T0
    assert (v1, v2) == pytest.approx((first, second))
    step_s = (t2 - t1).total_seconds()
    assert trace.series.resolution_s == step_s


def test_watttime_is_marginal_and_converted_from_lbs_per_mwh(tmp_path: Path) -> None:
    path = _write(tmp_path, "CAISO_NORTH_co2_moer_2023-06-01_2023-06-02.csv", WATTTIME)
    trace = read_carbon_trace(path)
    assert trace.unit is CarbonUnit.LBS_PER_MWH
    assert trace.series.signal is Signal.MARGINAL
    # 870 lbs/MWh = 870 x 453.592 g / 1,000 kWh.
    assert trace.series.points[0].g_per_kwh == pytest.approx(394.625, abs=1e-3)


@pytest.mark.parametrize(
    ("name", "text", "columns", "unit"),
    [
        (
            "DE_2023_hourly.csv",
            EM,
            "time=Datetime (UTC),intensity=Carbon Intensity gCO₂eq/kWh (LCA)",
            None,
        ),
        ("ger_ci.csv", LWA, "time=Time,intensity=Carbon Intensity", None),
        ("caiso.csv", VESSIM, "time=time,intensity=Caiso_North", None),
        (
            "CISO_direct_emissions.csv",
            CARBONCAST_OUTPUT,
            "time=UTC time,intensity=carbon_intensity",
            None,
        ),
        ("wt.csv", WATTTIME, "time=point_time,intensity=value", CarbonUnit.LBS_PER_MWH),
    ],
)
def test_every_format_mapped_by_hand_reads_the_same_values(
    tmp_path: Path, name: str, text: str, columns: str, unit: CarbonUnit | None
) -> None:
    path = _write(tmp_path, name, text)
    mapped = CarbonReading(columns=parse_carbon_columns(columns), unit=unit)
    trace = read_carbon_trace(path, mapped)
    assert trace.format is CarbonFormat.MAPPED
    detected = path
    if unit is not None:  # the WattTime client's own file name
        detected = _write(tmp_path, "CAISO_NORTH_co2_moer_2023-06-01_2023-06-02.csv", text)
    assert _values(path, mapped) == _values(detected)


def test_units_and_time_zone_of_a_mapped_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "site.csv", "when,co2\n2023-06-01 02:00,400\n1685588400,500\n")
    columns = parse_carbon_columns("time=when,intensity=co2")
    berlin = CarbonReading(columns=columns, zone=time_zone("Europe/Berlin"))
    # 02:00 in Berlin (CEST) is 00:00 UTC; epoch seconds are UTC whatever the zone.
    assert _values(path, berlin) == [(T0, 400.0), (datetime(2023, 6, 1, 3, tzinfo=UTC), 500.0)]
    offset = CarbonReading(columns=columns, zone=time_zone("+02:00"))
    assert _values(path, offset)[0][0] == T0
    kg = CarbonReading(columns=columns, unit=CarbonUnit.KG_PER_MWH)
    assert [v for _, v in _values(path, kg)] == [400.0, 500.0]
    lbs = CarbonReading(columns=columns, unit=CarbonUnit.LBS_PER_MWH)
    assert [v for _, v in _values(path, lbs)] == pytest.approx([181.4368, 226.796])
    assert read_carbon_trace(path, lbs).series.zone == "site"


def test_an_unknown_header_lists_the_accepted_formats(tmp_path: Path) -> None:
    path = _write(tmp_path, "mine.csv", "stamp,grams\n2023-06-01,100\n")
    with pytest.raises(SimulationInputError) as caught:
        read_carbon_trace(path)
    assert str(caught.value) == (
        f"{path}: unrecognised carbon trace columns ['stamp', 'grams']: accepted formats: "
        "Electricity Maps portal (Datetime (UTC), …, Carbon Intensity gCO₂eq/kWh (LCA)), "
        "Let's Wait Awhile (Time,Carbon Intensity), vessim WattTime (time,<Region>), "
        "CarbonCast (UTC time,carbon_intensity,…), WattTime (point_time,value), "
        "or any CSV mapped with --carbon-columns time=…,intensity=…"
    )
    assert ACCEPTED_CARBON_FORMATS in str(caught.value)


@pytest.mark.parametrize(
    ("text", "reading", "message"),
    [
        (
            "Time,Carbon Intensity\n2023-06-01 00:00,100\n2023-06-01 00:15,xyz\n",
            CarbonReading(),
            "row 3, column 'Carbon Intensity': expected an intensity in g/kWh, got 'xyz'",
        ),
        (
            "Time,Carbon Intensity\n\n2023-06-01 00:00,100\nyesterday,100\n",
            CarbonReading(),
            "row 4, column 'Time': expected a time (epoch seconds or ISO 8601, "
            "e.g. 2023-06-01 12:00:00), got 'yesterday'",
        ),
        (
            "Time,Carbon Intensity\n2023-06-01 00:00,2500\n",
            CarbonReading(),
            "row 2, column 'Carbon Intensity': expected an intensity of 0 to 2000 g/kWh once "
            "read as g/kWh (is --carbon-unit right?), got '2500 g/kWh'",
        ),
        (
            "Time,Carbon Intensity\n",
            CarbonReading(),
            "no data rows: expected one row per time step",
        ),
        (
            "stamp,grams\n2023-06-01,100\n",
            CarbonReading(columns={"time": "when", "intensity": "grams"}),
            "no column 'when' (from --carbon-columns) among ['stamp', 'grams']",
        ),
        (
            "generated_at,point_time,value\n2023-06-01,2023-06-01,870\n",
            CarbonReading(),
            "a WattTime forecast file (generated_at, point_time, value): expected actuals "
            "(point_time, value), as WattTime's historical CSV holds them",
        ),
    ],
    ids=["bad-value", "bad-time", "implausible", "no-rows", "mapped-missing", "forecast"],
)
def test_refusals_name_the_file_row_and_column(
    tmp_path: Path, text: str, reading: CarbonReading, message: str
) -> None:
    path = _write(tmp_path, "trace.csv", text)
    with pytest.raises(SimulationInputError) as caught:
        read_carbon_trace(path, reading)
    assert str(caught.value) == f"{path}: {message}"
    assert caught.value.path == str(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SimulationInputError) as caught:
        read_carbon_trace(tmp_path / "none.csv")
    assert str(caught.value) == f"{tmp_path / 'none.csv'}: no such carbon trace file"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "time",
            "--carbon-columns: cannot read 'time': expected key=column with keys time, "
            "intensity (e.g. --carbon-columns time=…,intensity=…)",
        ),
        ("time=t", "--carbon-columns: intensity is required (got 'time=t')"),
        ("time=t,time=u,intensity=v", "--carbon-columns: time is given twice"),
        (
            "time=t,value=v",
            "--carbon-columns: cannot read 'value=v': expected key=column with keys time, "
            "intensity (e.g. --carbon-columns time=…,intensity=…)",
        ),
    ],
)
def test_carbon_column_mappings_are_checked(text: str, message: str) -> None:
    with pytest.raises(SimulationInputError) as caught:
        parse_carbon_columns(text)
    assert str(caught.value) == message


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(SimulationInputError) as caught:
        time_zone("Mars/Olympus")
    assert str(caught.value) == (
        "--carbon-tz: unknown time zone 'Mars/Olympus': expected an IANA name "
        "(Europe/Berlin), UTC or an offset (+02:00)"
    )


@requires_shared_data
def test_the_real_carboncast_output_and_vessim_files_are_detected() -> None:
    folder = SHARED_DATA / "carbon"
    output = read_carbon_trace(
        folder / "carboncast_umassos-roro-experiments" / "CISO_direct_emissions.csv"
    )
    assert (output.format, output.series.zone, output.series.resolution_s) == (
        CarbonFormat.CARBONCAST,
        "CISO",
        3600,
    )
    assert len(output.series.points) == 35_112
    vessim = folder / "vessim-watttime" / "watttime2023_caiso-north_actual.csv"
    detected = read_carbon_trace(vessim)
    assert detected.format is CarbonFormat.VESSIM_WATTTIME
    # The replay's own loader reads the same values.
    assert [p.g_per_kwh for p in detected.series.points] == [
        p.g_per_kwh for p in load_carbon_trace(vessim).points
    ]

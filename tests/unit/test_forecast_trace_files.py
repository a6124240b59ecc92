"""Carbon trace readers: format detection, each format, gaps and issued forecasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.domain import ConfigError, SeriesKind, Signal
from scheduler.forecasts.replay import TRACES_DIR
from scheduler.forecasts.trace_files import (
    TraceFormat,
    detect_format,
    load_carbon_trace,
    load_forecast_trace,
)

T0 = datetime(2023, 6, 8, tzinfo=UTC)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            [
                "Datetime (UTC)",
                "Country",
                "Zone Name",
                "Zone Id",
                "Carbon Intensity gCO₂eq/kWh (direct)",
                "Carbon Intensity gCO₂eq/kWh (LCA)",
            ],
            TraceFormat.ELECTRICITYMAPS_PORTAL,
        ),
        (["Time", "Carbon Intensity"], TraceFormat.LETS_WAIT_AWHILE),
        (["time", "Caiso_North"], TraceFormat.VESSIM_ACTUAL),
        (["request_time", "forecast_time", "Caiso_North"], TraceFormat.VESSIM_FORECAST),
        (["UTC time", "carbon_intensity", "avg_carbon_intensity_forecast"], TraceFormat.CARBONCAST),
    ],
)
def test_formats_are_detected_from_the_header(header: list[str], expected: TraceFormat) -> None:
    assert detect_format(header) is expected


def test_unknown_header_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.csv", "when,what\n2023-01-01,1\n")

    with pytest.raises(ConfigError, match="unrecognised"):
        load_carbon_trace(path)


def test_full_electricitymaps_portal_export_reads_the_lca_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "ES_2023_hourly.csv",
        (
            "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
            "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
            "Data Source,Data Estimated,Data Estimation Method\r\n"
            "2023-01-01 00:00:00,Spain,Spain,ES,82.99,114.42,84.03,50.66,entsoe.eu,false,\r\n"
            "2023-01-01 01:00:00,Spain,Spain,ES,85.96,117.69,83.61,49.16,entsoe.eu,false,\r\n"
        ),
    )

    trace = load_carbon_trace(path)

    assert trace.zone == "ES"
    assert trace.provider == "electricitymaps"
    assert [p.g_per_kwh for p in trace.points] == [114.42, 117.69]
    assert trace.points[0].valid_at == datetime(2023, 1, 1, tzinfo=UTC)
    assert trace.issued_at == datetime(2023, 1, 1, 1, tzinfo=UTC)


def test_shipped_reduced_traces_read_the_same_way() -> None:
    trace = load_carbon_trace(TRACES_DIR / "DE_2023_hourly.csv")

    assert trace.zone == "DE"
    assert trace.points[0].g_per_kwh == 199.59  # the origin file's first LCA value


def test_lets_wait_awhile_mixed_resolution_is_forward_filled(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "gb_ci.csv",
        (
            "Time,Carbon Intensity\n2020-10-30 23:00:00,200.0\n2020-10-30 23:30:00,210.0\n"
            "2020-10-31 00:00:00,220.0\n2020-10-31 00:15:00,230.0\n2020-10-31 00:30:00,240.0\n"
        ),
    )

    trace = load_carbon_trace(path)

    assert trace.zone == "GB"
    assert trace.resolution_s == 900
    assert [p.g_per_kwh for p in trace.points] == [200, 200, 210, 210, 220, 230, 240]
    steps = {b.valid_at - a.valid_at for a, b in zip(trace.points, trace.points[1:], strict=False)}
    assert steps == {timedelta(minutes=15)}


def test_long_gaps_stay_gaps(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "ForecastsCISO.csv",
        (
            "UTC time,carbon_intensity,avg_carbon_intensity_forecast\n"
            "2020-12-30 22:00:00,100,90\n2020-12-30 23:00:00,110,95\n"
            "2021-01-01 00:00:00,120,100\n"
        ),
    )

    trace = load_carbon_trace(path)

    assert trace.zone == "CISO"
    assert trace.provider == "carboncast"
    assert [p.g_per_kwh for p in trace.points] == [100, 110, 120]


def test_vessim_actuals_are_marginal(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "watttime2023_caiso-north_actual.csv",
        "time,Caiso_North\n2023-06-08 00:00:00,425.01605069\n2023-06-08 00:05:00,432.27352861\n",
    )

    trace = load_carbon_trace(path)

    assert trace.zone == "CAISO_NORTH"
    assert trace.signal is Signal.MARGINAL
    assert trace.resolution_s == 300


def test_vessim_forecasts_are_one_series_per_request(tmp_path: Path) -> None:
    rows = ["request_time,forecast_time,Caiso_North"]
    for request in range(2):
        issued = T0 + timedelta(minutes=5 * request)
        rows += [
            f"{issued:%Y-%m-%d %H:%M:%S},"
            f"{issued + timedelta(minutes=5 * k):%Y-%m-%d %H:%M:%S},"
            f"{400 + request * 10 + k}"
            for k in range(1, 14)
        ]
    path = _write(tmp_path, "f.csv", "\n".join(rows) + "\n")

    forecasts = load_forecast_trace(path)

    assert [f.issued_at for f in forecasts] == [T0, T0 + timedelta(minutes=5)]
    assert all(f.kind is SeriesKind.FORECAST and f.signal is Signal.MARGINAL for f in forecasts)
    assert forecasts[0].points[0].valid_at == T0 + timedelta(minutes=5)
    assert len(forecasts[1].points) == 13
    assert forecasts[1].points[0].g_per_kwh == 411
    with pytest.raises(ConfigError, match="load_forecast_trace"):
        load_carbon_trace(path)


def test_carboncast_day_ahead_forecasts(tmp_path: Path) -> None:
    start = datetime(2019, 1, 1, tzinfo=UTC)
    rows = ["UTC time,carbon_intensity,avg_carbon_intensity_forecast"] + [
        f"{start + timedelta(hours=h):%Y-%m-%d %H:%M:%S},{100 + h},{50 + h}" for h in range(72)
    ]
    path = _write(tmp_path, "ForecastsCISO.csv", "\n".join(rows) + "\n")

    forecasts = load_forecast_trace(path)

    assert [f.issued_at for f in forecasts] == [start + timedelta(days=d) for d in range(3)]
    assert [len(f.points) for f in forecasts] == [48, 48, 24]
    assert forecasts[1].points[0].g_per_kwh == 50 + 24
    assert forecasts[0].zone == "CISO"
    with pytest.raises(ConfigError, match="no issued forecasts"):
        load_forecast_trace(TRACES_DIR / "ES_2023_hourly.csv")


def test_bad_rows_name_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.csv", "Time,Carbon Intensity\n2020-01-01 00:00:00,lots\n")

    with pytest.raises(ConfigError, match=r"bad\.csv"):
        load_carbon_trace(path)
    with pytest.raises(ConfigError, match="implausible"):
        load_carbon_trace(
            _write(tmp_path, "neg.csv", "Time,Carbon Intensity\n2020-01-01 00:00:00,-4\n")
        )
    with pytest.raises(ConfigError, match="cannot read"):
        load_carbon_trace(tmp_path / "missing.csv")

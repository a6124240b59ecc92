"""The replay provider over the bundled Electricity Maps traces."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.domain import ProviderError, SeriesKind
from scheduler.forecasts.replay import BUNDLED_TRACES, TRACES_DIR, ReplayProvider, load_trace

TRACE_START = datetime(2023, 3, 1, tzinfo=UTC)
ANCHOR = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)


def _provider(**kwargs: object) -> ReplayProvider:
    options: dict[str, object] = {"horizon_h": 48.0, "error_per_day": 0.1, "seed": 3}
    options.update(kwargs)
    return ReplayProvider(TRACE_START, ANCHOR, **options)  # type: ignore[arg-type]


def test_bundled_traces_are_a_full_year_of_lca_values() -> None:
    expected_means = {"DE": 395.1, "ES": 160.1, "US-CAL-CISO": 261.2}  # from SOURCES.md
    for zone, filename in BUNDLED_TRACES.items():
        trace = load_trace(zone)
        assert trace.zone == zone
        assert trace.kind is SeriesKind.ACTUAL
        assert trace.resolution_s == 3600
        assert len(trace.points) == 8760
        assert trace.start == datetime(2023, 1, 1, tzinfo=UTC)
        assert statistics.fmean(p.g_per_kwh for p in trace.points) == pytest.approx(
            expected_means[zone], abs=0.1
        )
        assert load_trace(TRACES_DIR / filename) == trace
    assert (TRACES_DIR / "ATTRIBUTION.md").read_text().count("ODbL") >= 1


def test_actuals_are_the_trace_shifted_onto_scheduler_time() -> None:
    trace = load_trace("DE")
    offset = 59 * 24  # 2023-03-01 is the 60th day of the trace

    actuals = _provider().actuals("DE", ANCHOR, ANCHOR + 6 * H)

    assert actuals.kind is SeriesKind.ACTUAL
    assert [p.valid_at for p in actuals.points] == [ANCHOR + i * H for i in range(6)]
    assert [p.g_per_kwh for p in actuals.points] == [
        p.g_per_kwh for p in trace.points[offset : offset + 6]
    ]
    assert actuals.issued_at == ANCHOR + 6 * H


def test_a_window_starting_mid_slot_includes_that_slot() -> None:
    actuals = _provider().actuals("ES", ANCHOR + timedelta(minutes=30), ANCHOR + 2 * H)

    assert [p.valid_at for p in actuals.points] == [ANCHOR, ANCHOR + H]


def test_forecast_covers_now_to_the_horizon_and_tracks_the_trace() -> None:
    now = ANCHOR + timedelta(minutes=20)
    provider = _provider(error_per_day=0.0)

    forecast = provider.forecast("US-CAL-CISO", now)
    actuals = provider.actuals("US-CAL-CISO", now, now + 48 * H)

    assert forecast.kind is SeriesKind.FORECAST
    assert forecast.issued_at == now
    assert forecast.points[0].valid_at == ANCHOR
    assert forecast.end is not None
    assert now + 48 * H <= forecast.end <= now + 49 * H
    assert [p.g_per_kwh for p in forecast.points] == [p.g_per_kwh for p in actuals.points]


def test_forecast_error_is_seeded_and_grows_with_lead_time() -> None:
    provider = _provider(error_per_day=0.1)
    now = ANCHOR
    trace = {p.valid_at: p.g_per_kwh for p in provider.actuals("DE", now, now + 49 * H).points}
    mean = statistics.fmean(p.g_per_kwh for p in load_trace("DE").points)

    near, far = [], []
    for day in range(40):  # many issues, to measure the spread at each lead
        issued = now + timedelta(days=day)
        errors = {
            p.valid_at - issued: p.g_per_kwh
            - provider.actuals("DE", p.valid_at, p.valid_at + H).points[0].g_per_kwh
            for p in provider.forecast("DE", issued).points
        }
        near.append(errors[timedelta(hours=2)])
        far.append(errors[timedelta(hours=44)])

    assert provider.forecast("DE", now) == provider.forecast("DE", now)
    assert provider.forecast("DE", now) != _provider(seed=4).forecast("DE", now)
    assert provider.forecast("DE", now) != provider.forecast("ES", now)
    assert provider.forecast("DE", now).points[0].g_per_kwh == trace[now]  # lead 0: no error
    # sigma = 0.1 x mean x lead/24h: ~3.3 g at 2 h, ~72 g at 44 h.
    assert statistics.pstdev(near) < 0.3 * statistics.pstdev(far)
    assert 0.5 * 0.1 * mean * 44 / 24 < statistics.pstdev(far) < 1.5 * 0.1 * mean * 44 / 24


def test_replay_wraps_around_the_trace_year() -> None:
    provider = _provider(error_per_day=0.0)
    year = timedelta(hours=8760)

    later = provider.actuals("DE", ANCHOR + 3 * year, ANCHOR + 3 * year + 5 * H)
    now = provider.actuals("DE", ANCHOR, ANCHOR + 5 * H)
    # 306 days after 2023-03-01 is the trace's end (2024-01-01): issue 12 h before it.
    issued = ANCHOR + timedelta(days=305, hours=12)
    across_end = provider.forecast("DE", issued)

    assert [p.g_per_kwh for p in later.points] == [p.g_per_kwh for p in now.points]
    assert provider.trace_time(issued) == datetime(2023, 12, 31, 12, tzinfo=UTC)
    assert [p.valid_at for p in across_end.points] == [issued + i * H for i in range(48)]
    trace = load_trace("DE").points
    assert [p.g_per_kwh for p in across_end.points[12:15]] == [
        p.g_per_kwh for p in trace[:3]
    ]  # 2023-01-01 again
    assert across_end.points[11].g_per_kwh == trace[-1].g_per_kwh


def test_unknown_zone_is_not_retryable() -> None:
    with pytest.raises(ProviderError, match="no trace") as caught:
        _provider().forecast("FR", ANCHOR)

    assert not caught.value.retryable


def test_a_custom_traces_dir_with_gaps_is_forward_filled(tmp_path: Path) -> None:
    (tmp_path / "XX_2023_hourly.csv").write_text(
        "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (LCA)\n"
        "2023-03-01 00:00:00,XX,100\n2023-03-01 01:00:00,XX,110\n"
        "2023-03-01 04:00:00,XX,140\n2023-03-01 05:00:00,XX,150\n",
        encoding="utf-8",
    )
    provider = ReplayProvider(TRACE_START, ANCHOR, traces_dir=tmp_path, error_per_day=0.0)

    actuals = provider.actuals("XX", ANCHOR, ANCHOR + 6 * H)

    assert provider.zones == ("XX",)
    assert [p.g_per_kwh for p in actuals.points] == [100, 110, 110, 110, 140, 150]

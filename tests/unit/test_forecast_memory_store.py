"""MemoryForecastStore keeps the ForecastStore contract the refresher and simulations rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.domain import Forecast, IntensityPoint, SeriesKind
from scheduler.forecasts.memory_store import MemoryForecastStore

T0 = datetime(2025, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def _series(
    kind: SeriesKind, issued_at: datetime, start: datetime, values: list[float], zone: str = "DE"
) -> Forecast:
    return Forecast(
        zone=zone,
        provider="p",
        kind=kind,
        issued_at=issued_at,
        resolution_s=3600,
        points=tuple(
            IntensityPoint(valid_at=start + i * H, g_per_kwh=v) for i, v in enumerate(values)
        ),
    )


def test_latest_forecast_as_of_a_time() -> None:
    store = MemoryForecastStore()
    early = _series(SeriesKind.FORECAST, T0, T0, [1.0])
    late = _series(SeriesKind.FORECAST, T0 + 2 * H, T0, [2.0])
    store.append_forecast(late)
    store.append_forecast(early)
    store.append_forecast(_series(SeriesKind.ACTUAL, T0 + 3 * H, T0, [9.0]))

    assert store.latest_forecast("DE", T0 + H) == early
    assert store.latest_forecast("DE", T0 + 5 * H) == late
    assert store.latest_forecast("DE", T0 - H) is None
    assert store.latest_forecast("ES", T0 + 5 * H) is None
    latest_actual = store.latest_forecast("DE", T0 + 5 * H, SeriesKind.ACTUAL)
    assert latest_actual is not None
    assert latest_actual.points[0].g_per_kwh == 9.0


def test_actuals_merge_with_the_latest_issue_winning() -> None:
    store = MemoryForecastStore()
    store.append_forecast(_series(SeriesKind.ACTUAL, T0 + 3 * H, T0, [1.0, 2.0, 3.0]))
    store.append_forecast(_series(SeriesKind.ACTUAL, T0 + 5 * H, T0 + 2 * H, [30.0, 4.0, 5.0]))

    merged = store.actuals("DE", T0 + H, T0 + 4 * H)

    assert merged is not None
    assert [p.g_per_kwh for p in merged.points] == [2.0, 30.0, 4.0]
    assert store.actuals("DE", T0 + 10 * H, T0 + 11 * H) is None


def test_forecasts_between_and_prune() -> None:
    store = MemoryForecastStore()
    for hour in range(4):
        store.append_forecast(_series(SeriesKind.FORECAST, T0 + hour * H, T0, [float(hour)]))

    between = store.forecasts_between("DE", T0 + H, T0 + 3 * H)
    removed = store.prune_forecasts(T0 + 2 * H)

    assert [f.issued_at for f in between] == [T0 + H, T0 + 2 * H]
    assert removed == 2
    assert store.count("DE") == 2

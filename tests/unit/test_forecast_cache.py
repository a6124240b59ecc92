"""CachingProvider: TTL per zone, shared fetches, faults never cached."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.domain import Forecast, IntensityPoint, ProviderError, SeriesKind
from scheduler.forecasts.cache import CachingProvider

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class CountingProvider:
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()

    def _series(self, zone: str, kind: SeriesKind, at: datetime) -> Forecast:
        with self._lock:
            self.calls += 1
        if self.gate is not None:
            self.gate.wait(timeout=5)
        if self.fail:
            raise ProviderError(self.name, "down")
        return Forecast(
            zone=zone,
            provider=self.name,
            kind=kind,
            issued_at=at,
            resolution_s=3600,
            points=(IntensityPoint(valid_at=at, g_per_kwh=float(self.calls)),),
        )

    def forecast(self, zone: str, now: datetime) -> Forecast:
        return self._series(zone, SeriesKind.FORECAST, now)

    def actuals(self, zone: str, start: datetime, end: datetime) -> Forecast:
        return self._series(zone, SeriesKind.ACTUAL, start)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_forecasts_are_served_from_cache_within_the_ttl_per_zone() -> None:
    inner = CountingProvider()
    cache = CachingProvider(inner, {"DE": 600.0}, default_ttl_s=60.0)

    first = cache.forecast("DE", T0)
    again = cache.forecast("DE", T0 + timedelta(seconds=599))
    other = cache.forecast("ES", T0)
    other_later = cache.forecast("ES", T0 + timedelta(seconds=61))
    refreshed = cache.forecast("DE", T0 + timedelta(seconds=600))

    assert again is first
    assert other is not other_later
    assert refreshed is not first
    assert inner.calls == 4
    assert cache.name == "counting"


def test_time_going_backwards_refetches() -> None:
    inner = CountingProvider()
    cache = CachingProvider(inner, 600.0)
    cache.forecast("DE", T0)

    cache.forecast("DE", T0 - timedelta(seconds=1))

    assert inner.calls == 2


def test_faults_are_not_cached() -> None:
    inner = CountingProvider()
    cache = CachingProvider(inner, 600.0)
    inner.fail = True
    with pytest.raises(ProviderError):
        cache.forecast("DE", T0)

    inner.fail = False
    assert cache.forecast("DE", T0).points
    assert inner.calls == 2


def test_actuals_are_cached_by_window_for_the_ttl() -> None:
    inner = CountingProvider()
    clock = FakeMonotonic()
    cache = CachingProvider(inner, 300.0, monotonic=clock)
    window = (T0, T0 + timedelta(hours=3))

    first = cache.actuals("DE", *window)
    assert cache.actuals("DE", *window) is first
    cache.actuals("DE", T0, T0 + timedelta(hours=4))
    clock.now_s += 300
    assert cache.actuals("DE", *window) is not first
    assert inner.calls == 3


def test_invalidate_forgets_a_zone() -> None:
    inner = CountingProvider()
    cache = CachingProvider(inner, 600.0)
    cache.forecast("DE", T0)
    cache.forecast("ES", T0)

    cache.invalidate("DE")
    cache.forecast("DE", T0)
    cache.forecast("ES", T0)

    assert inner.calls == 3


def test_concurrent_callers_share_one_fetch() -> None:
    inner = CountingProvider()
    inner.gate = threading.Event()
    cache = CachingProvider(inner, 600.0)

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(cache.forecast, "DE", T0) for _ in range(4)]
        inner.gate.set()
        results = [f.result(timeout=5) for f in futures]

    assert inner.calls == 1
    assert all(r is results[0] for r in results)

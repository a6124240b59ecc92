"""ForecastRefresher: parallel fetches, freshness skip, backoff, Retry-After, rate limits."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.domain import ConfigError, Forecast, IntensityPoint, ProviderError, SeriesKind
from scheduler.forecasts.memory_store import MemoryForecastStore
from scheduler.forecasts.refresh import ForecastRefresher, RefreshStatus
from scheduler.forecasts.throttle import BackoffPolicy, RateLimit, TokenBucket
from tests.fakes.clock import FakeClock

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


class ScriptedProvider:
    """An in-process provider: hourly series, optional failure, optional rendezvous."""

    def __init__(
        self,
        name: str = "scripted",
        *,
        error: Exception | None = None,
        barrier: threading.Barrier | None = None,
        actuals_error: ProviderError | None = None,
        issued_at: datetime | None = None,
    ) -> None:
        self.name = name
        self.error = error
        self.barrier = barrier
        self.actuals_error = actuals_error
        self.issued_at = issued_at
        self.forecast_calls: list[tuple[str, datetime]] = []
        self.actuals_calls: list[tuple[str, datetime, datetime]] = []
        self._lock = threading.Lock()

    def forecast(self, zone: str, now: datetime) -> Forecast:
        with self._lock:
            self.forecast_calls.append((zone, now))
        if self.barrier is not None:
            self.barrier.wait(timeout=5)
        if self.error is not None:
            raise self.error
        start = now.replace(minute=0, second=0, microsecond=0)
        return _series(zone, self.name, SeriesKind.FORECAST, self.issued_at or now, start, 48)

    def actuals(self, zone: str, start: datetime, end: datetime) -> Forecast:
        with self._lock:
            self.actuals_calls.append((zone, start, end))
        if self.actuals_error is not None:
            raise self.actuals_error
        first = start.replace(minute=0, second=0, microsecond=0)
        hours = max(1, int((end - first) / HOUR))
        return _series(zone, self.name, SeriesKind.ACTUAL, end, first, hours)


def _series(
    zone: str, provider: str, kind: SeriesKind, issued_at: datetime, start: datetime, hours: int
) -> Forecast:
    return Forecast(
        zone=zone,
        provider=provider,
        kind=kind,
        issued_at=issued_at,
        resolution_s=3600,
        points=tuple(
            IntensityPoint(valid_at=start + i * HOUR, g_per_kwh=200.0 + i) for i in range(hours)
        ),
    )


def _refresher(
    providers: dict[str, tuple[ScriptedProvider, str]],
    store: MemoryForecastStore,
    clock: FakeClock,
    **kwargs: object,
) -> ForecastRefresher:
    options: dict[str, object] = {
        "rate_limits": {},
        "rng": random.Random(7),
        "default_interval_s": 900.0,
    }
    options.update(kwargs)
    return ForecastRefresher(providers, store, clock, **options)  # type: ignore[arg-type]


def test_refresh_stores_forecasts_and_recent_actuals() -> None:
    store, clock = MemoryForecastStore(), FakeClock(T0)
    provider = ScriptedProvider()
    refresher = _refresher({"eu": (provider, "DE"), "us": (provider, "US-CAL-CISO")}, store, clock)

    result = refresher.refresh()

    assert result.with_status(RefreshStatus.OK) == ["eu", "us"]
    assert result.failed == []
    assert result.calls == 4
    for zone in ("DE", "US-CAL-CISO"):
        forecast = store.latest_forecast(zone, T0)
        assert forecast is not None
        assert forecast.issued_at == T0
        actuals = store.actuals(zone, T0 - 24 * HOUR, T0)
        assert actuals is not None
        assert len(actuals.points) == 24
    assert result.regions["eu"].forecast_end == T0 + 48 * HOUR


def test_regions_are_fetched_in_parallel() -> None:
    # Each fetch waits until all four are in flight: only a parallel refresh gets past it.
    barrier = threading.Barrier(4)
    providers = {f"r{i}": (ScriptedProvider(f"p{i}", barrier=barrier), f"Z{i}") for i in range(4)}
    refresher = _refresher(providers, MemoryForecastStore(), FakeClock(T0), max_workers=4)

    result = refresher.refresh()

    assert result.with_status(RefreshStatus.OK) == ["r0", "r1", "r2", "r3"]
    assert not barrier.broken


def test_a_fresh_forecast_is_not_refetched_even_after_a_restart() -> None:
    store, clock = MemoryForecastStore(), FakeClock(T0)
    first = ScriptedProvider()
    _refresher({"eu": (first, "DE")}, store, clock).refresh()
    restarted_provider = ScriptedProvider()
    restarted = _refresher({"eu": (restarted_provider, "DE")}, store, clock)

    clock.advance(600)
    skipped = restarted.refresh()
    clock.advance(301)
    fetched = restarted.refresh()

    assert skipped.regions["eu"].status is RefreshStatus.SKIPPED
    assert skipped.regions["eu"].next_attempt_at == T0 + timedelta(seconds=900)
    assert fetched.regions["eu"].status is RefreshStatus.OK
    assert len(restarted_provider.forecast_calls) == 1


def test_force_ignores_freshness() -> None:
    store, clock = MemoryForecastStore(), FakeClock(T0)
    provider = ScriptedProvider()
    refresher = _refresher({"eu": (provider, "DE")}, store, clock)
    refresher.refresh()

    result = refresher.refresh(T0 + timedelta(seconds=60), force=True)

    assert result.regions["eu"].status is RefreshStatus.OK
    assert len(provider.forecast_calls) == 2


def test_an_unchanged_forecast_is_stored_once_and_not_refetched_within_the_interval() -> None:
    store, clock = MemoryForecastStore(), FakeClock(T0)
    provider = ScriptedProvider(issued_at=T0 - 2 * HOUR)  # the provider's model ran long ago
    refresher = _refresher({"eu": (provider, "DE")}, store, clock)

    refresher.refresh()
    clock.advance(60)
    second = refresher.refresh()
    clock.advance(900)
    refresher.refresh()

    assert second.regions["eu"].status is RefreshStatus.SKIPPED
    assert len(provider.forecast_calls) == 2
    assert len(store.forecasts_between("DE", T0 - 3 * HOUR, T0 + 3 * HOUR)) == 1


def test_actuals_resume_from_the_last_stored_slot() -> None:
    store, clock = MemoryForecastStore(), FakeClock(T0)
    provider = ScriptedProvider()
    refresher = _refresher({"eu": (provider, "DE")}, store, clock)
    refresher.refresh()

    clock.advance(3 * 3600)
    refresher.refresh()

    assert provider.actuals_calls[0][1] == T0 - 24 * HOUR
    assert provider.actuals_calls[1][1] == T0 - HOUR  # the last stored slot, re-read
    assert provider.actuals_calls[1][2] == T0 + 3 * HOUR


def test_backoff_grows_exponentially_with_jitter() -> None:
    clock = FakeClock(T0)
    provider = ScriptedProvider(error=ProviderError("scripted", "HTTP 503: busy"))
    refresher = _refresher(
        {"eu": (provider, "DE")},
        MemoryForecastStore(),
        clock,
        backoff=BackoffPolicy(base_s=30, max_s=3600, jitter=0.5),
    )
    delays = []
    for _ in range(4):
        result = refresher.refresh()
        outcome = result.regions["eu"]
        assert outcome.status is RefreshStatus.ERROR
        assert outcome.next_attempt_at is not None
        delays.append((outcome.next_attempt_at - clock.now()).total_seconds())
        clock.advance(delays[-1] - 1)
        assert refresher.refresh().regions["eu"].status is RefreshStatus.BACKOFF
        clock.advance(1)

    for attempt, delay_s in enumerate(delays):
        ceiling_s = 30 * 2**attempt
        assert ceiling_s / 2 <= delay_s <= ceiling_s
    assert len(provider.forecast_calls) == 4
    assert refresher.last_results()["eu"].failures == 4


def test_retry_after_is_respected() -> None:
    clock = FakeClock(T0)
    provider = ScriptedProvider(error=ProviderError("scripted", "HTTP 429", retry_after_s=600))
    refresher = _refresher({"eu": (provider, "DE")}, MemoryForecastStore(), clock)

    first = refresher.refresh()
    clock.advance(599)
    waiting = refresher.refresh(force=True)
    clock.advance(1)
    provider.error = None
    recovered = refresher.refresh()

    assert first.regions["eu"].next_attempt_at == T0 + timedelta(seconds=600)
    assert waiting.regions["eu"].status is RefreshStatus.BACKOFF
    assert recovered.regions["eu"].status is RefreshStatus.OK
    assert recovered.regions["eu"].failures == 0
    assert len(provider.forecast_calls) == 2


def test_a_fault_retrying_cannot_fix_waits_long_but_actuals_are_still_fetched() -> None:
    store, clock = MemoryForecastStore(), FakeClock(T0)
    refused = ProviderError("scripted", "HTTP 403: plan lacks forecasts", retryable=False)
    provider = ScriptedProvider(error=refused)
    refresher = _refresher(
        {"eu": (provider, "DE")}, store, clock, backoff=BackoffPolicy(non_retryable_s=7200)
    )

    result = refresher.refresh()

    outcome = result.regions["eu"]
    assert outcome.status is RefreshStatus.ERROR
    assert outcome.next_attempt_at is not None
    assert outcome.next_attempt_at >= T0 + timedelta(seconds=7200)
    assert outcome.actual_points == 24
    assert store.actuals("DE", T0 - 24 * HOUR, T0) is not None
    assert "403" in (outcome.message or "")


def test_one_broken_provider_does_not_stop_the_others() -> None:
    store, clock = MemoryForecastStore(), FakeClock(T0)
    providers = {
        "ok": (ScriptedProvider("a"), "DE"),
        "down": (ScriptedProvider("b", error=ProviderError("b", "unreachable")), "ES"),
        "buggy": (ScriptedProvider("c", error=RuntimeError("adapter bug")), "FR"),
    }

    result = _refresher(providers, store, clock).refresh()

    assert result.with_status(RefreshStatus.OK) == ["ok"]
    assert result.failed == ["buggy", "down"]
    assert "adapter bug" in (result.regions["buggy"].message or "")
    assert store.latest_forecast("DE", T0) is not None
    assert store.latest_forecast("ES", T0) is None
    # A retryable fault means a struggling provider: no actuals call piled on top.
    assert providers["down"][0].actuals_calls == []


def test_an_actuals_fault_does_not_fail_the_region() -> None:
    provider = ScriptedProvider(actuals_error=ProviderError("scripted", "no actuals"))

    result = _refresher({"eu": (provider, "DE")}, MemoryForecastStore(), FakeClock(T0)).refresh()

    assert result.regions["eu"].status is RefreshStatus.OK
    assert result.regions["eu"].message == "actuals: no actuals"


def test_regions_sharing_a_provider_and_zone_are_fetched_once() -> None:
    provider = ScriptedProvider()
    refresher = _refresher(
        {"a": (provider, "DE"), "b": (provider, "DE")}, MemoryForecastStore(), FakeClock(T0)
    )

    result = refresher.refresh()

    assert result.with_status(RefreshStatus.OK) == ["a", "b"]
    assert len(provider.forecast_calls) == 1


def test_rate_limit_defers_what_exceeds_the_budget() -> None:
    providers = {
        name: (ScriptedProvider("limited"), zone)
        for name, zone in (("a", "DE"), ("b", "ES"), ("c", "FR"))
    }
    # Three calls now, then one per 1,000 s: a gets forecast + actuals, b a forecast, c nothing.
    refresher = _refresher(
        providers,
        MemoryForecastStore(),
        FakeClock(T0),
        max_workers=1,
        rate_limits={"limited": RateLimit(rate_per_s=0.001, burst=3)},
        rate_limit_wait_s=0.0,
    )

    result = refresher.refresh()

    assert result.regions["a"].status is RefreshStatus.OK
    assert result.regions["a"].message is None
    assert result.regions["b"].status is RefreshStatus.OK
    assert result.regions["b"].message == "actuals: deferred by the rate limit"
    deferred = result.regions["c"]
    assert deferred.status is RefreshStatus.RATE_LIMITED
    assert deferred.next_attempt_at is not None
    assert deferred.next_attempt_at > T0 + timedelta(seconds=900)
    assert providers["c"][0].forecast_calls == []


def test_unknown_region_is_a_config_error() -> None:
    refresher = _refresher({"eu": (ScriptedProvider(), "DE")}, MemoryForecastStore(), FakeClock(T0))

    with pytest.raises(ConfigError, match="nowhere"):
        refresher.refresh(regions=["nowhere"])


class FakeTime:
    def __init__(self) -> None:
        self.now_s = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_s += seconds


def test_token_bucket_paces_calls() -> None:
    fake = FakeTime()
    bucket = TokenBucket(
        RateLimit(rate_per_s=2.0, burst=2), monotonic=fake.monotonic, sleep=fake.sleep
    )

    waits = [bucket.acquire(max_wait_s=10.0) for _ in range(4)]

    assert waits == [0.0, 0.0, 0.0, 0.0]
    assert fake.slept == pytest.approx([0.5, 0.5])
    assert bucket.acquire(max_wait_s=0.1) == pytest.approx(0.5)
    fake.now_s += 0.5
    assert bucket.try_acquire() == 0.0


def test_a_refresh_interval_can_come_with_the_region() -> None:
    store, clock = MemoryForecastStore(), FakeClock(T0)
    provider = ScriptedProvider()
    refresher = ForecastRefresher(
        {"eu": (provider, "DE", 60.0), "es": (provider, "ES")}, store, clock, rate_limits={}
    )
    refresher.refresh()

    clock.advance(61)
    result = refresher.refresh()

    assert refresher.interval_s("eu") == 60.0
    assert result.regions["eu"].status is RefreshStatus.OK
    assert result.regions["es"].status is RefreshStatus.SKIPPED

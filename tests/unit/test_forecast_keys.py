"""Forecasts are keyed by (provider, zone); a forced pull clears an auth backoff; actuals faults
are logged and reported like forecast faults (issue 9, item 6)."""

from __future__ import annotations

import logging
import random

import pytest

from scheduler.domain import ProviderError
from scheduler.forecasts.http import ProviderAuthError
from scheduler.forecasts.memory_store import MemoryForecastStore
from scheduler.forecasts.refresh import ForecastRefresher, RefreshStatus
from scheduler.forecasts.throttle import BackoffPolicy
from tests.fakes.clock import FakeClock
from tests.unit.test_forecast_refresh import HOUR, T0, ScriptedProvider


def _refresher(
    providers: dict[str, tuple[ScriptedProvider, str]],
    store: MemoryForecastStore,
    clock: FakeClock,
) -> ForecastRefresher:
    return ForecastRefresher(
        providers,  # type: ignore[arg-type]
        store,
        clock,
        rate_limits={},
        rng=random.Random(7),
        default_interval_s=900.0,
        backoff=BackoffPolicy(non_retryable_s=3600),
    )


def test_two_providers_of_one_zone_keep_their_own_series() -> None:
    store, clock = MemoryForecastStore(), FakeClock(T0)
    first, second = ScriptedProvider("first"), ScriptedProvider("second")
    refresher = _refresher({"a": (first, "DE")}, store, clock)
    assert refresher.refresh().regions["a"].status is RefreshStatus.OK
    # The second provider's region is not skipped because the first one's series is fresh.
    both = _refresher({"a": (first, "DE"), "b": (second, "DE")}, store, clock)
    result = both.refresh()
    assert result.regions["a"].status is RefreshStatus.SKIPPED
    assert result.regions["b"].status is RefreshStatus.OK
    assert len(second.forecast_calls) == 1
    for name in ("first", "second"):
        latest = store.latest_forecast("DE", T0, provider=name)
        assert latest is not None
        assert latest.provider == name
        actuals = store.actuals("DE", T0 - 24 * HOUR, T0, provider=name)
        assert actuals is not None
        assert actuals.provider == name
        assert [f.provider for f in store.forecasts_between("DE", T0, T0 + HOUR, provider=name)]
    assert store.latest_forecast("DE", T0, provider="third") is None


def test_a_forced_pull_clears_an_auth_backoff_but_not_a_retry_after() -> None:
    clock = FakeClock(T0)
    refused = ProviderAuthError("scripted", "HTTP 401: bad key", status=401, json_body=True)
    provider = ScriptedProvider(error=refused)
    refresher = _refresher({"eu": (provider, "DE")}, MemoryForecastStore(), clock)

    failed = refresher.refresh()
    assert failed.regions["eu"].status is RefreshStatus.ERROR
    clock.advance(60)
    assert refresher.refresh().regions["eu"].status is RefreshStatus.BACKOFF
    provider.error = None  # the operator fixed the key
    assert refresher.refresh(force=True).regions["eu"].status is RefreshStatus.OK
    assert len(provider.forecast_calls) == 2

    provider.error = ProviderError("scripted", "HTTP 429", retry_after_s=600)
    clock.advance(3600)
    assert refresher.refresh(force=True).regions["eu"].status is RefreshStatus.ERROR
    clock.advance(60)
    assert refresher.refresh(force=True).regions["eu"].status is RefreshStatus.BACKOFF


def test_actuals_faults_are_logged_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    provider = ScriptedProvider(actuals_error=ProviderError("scripted", "actuals API down"))
    refresher = _refresher({"eu": (provider, "DE")}, MemoryForecastStore(), FakeClock(T0))

    with caplog.at_level(logging.WARNING, logger="scheduler.forecasts.refresh"):
        outcome = refresher.refresh().regions["eu"]

    assert outcome.status is RefreshStatus.OK
    assert outcome.message == "actuals: actuals API down"
    assert any("actuals API down" in r.getMessage() for r in caplog.records)

"""WattTime API v3: marginal emissions (MOER) forecasts and history for a balancing authority.

``GET /login`` with HTTP basic auth returns a bearer token that lives 30 minutes; the client
caches it until shortly before then and logs in again when a data call answers 401 (or a
gateway's non-JSON 403, which WattTime's own clients also treat as an expired token). Values
come in ``meta.units`` (normally lbs CO2/MWh) and are converted to g/kWh. ``co2_moer`` is the
*marginal* rate, so its series carry ``Signal.MARGINAL``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.domain import ConfigError, Forecast, ProviderError, SeriesKind, Signal
from scheduler.forecasts.http import HttpSettings, JsonHttpClient, ProviderAuthError
from scheduler.forecasts.validation import (
    DEFAULT_MIN_HORIZON_S,
    as_number,
    build_series,
    clamp_issued_at,
    json_array,
    json_field,
    parse_time,
    trim_actuals,
    trim_forecast,
)

PROVIDER = "watttime"
DEFAULT_BASE_URL = "https://api.watttime.org"
LOGIN_PATH = "login"  # no /v3 prefix, unlike the data endpoints
TOKEN_LIFETIME_S = 30 * 60.0
# Log in again this long before the token's stated expiry, so no call races the deadline.
TOKEN_RENEW_MARGIN_S = 60.0
# 1 lb = 453.592 g and 1 MWh = 1,000 kWh, so 1 lbs/MWh = 0.453592 g/kWh.
G_PER_KWH_PER_LBS_PER_MWH = 0.453592
UNIT_TO_G_PER_KWH: Mapping[str, float] = {
    "lbs_co2_per_mwh": G_PER_KWH_PER_LBS_PER_MWH,
    "kg_co2_per_mwh": 1.0,
    "g_co2_per_kwh": 1.0,
}
SIGNAL_TYPES: Mapping[str, Signal] = {"co2_moer": Signal.MARGINAL, "co2_aoer": Signal.AVERAGE}
DEFAULT_HORIZON_S = 24 * 3600.0
MAX_HORIZON_HOURS = 72
HISTORICAL_MAX_SPAN_S = 32 * 24 * 3600.0


def lbs_per_mwh_to_g_per_kwh(lbs_per_mwh: float) -> float:
    """Convert an emissions rate in lbs CO2/MWh to g CO2/kWh."""
    return lbs_per_mwh * G_PER_KWH_PER_LBS_PER_MWH


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


class WattTimeClient:
    """Raw v3 endpoints with the login/token flow. Thread-safe. Returns decoded JSON.

    ``monotonic`` is the time source for token expiry (seconds; injectable for tests).
    """

    def __init__(
        self,
        username: str,
        password: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        http_settings: HttpSettings | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        token_lifetime_s: float = TOKEN_LIFETIME_S,
    ) -> None:
        self.http = JsonHttpClient(PROVIDER, base_url, settings=http_settings)
        self._credentials = (username, password)
        self._monotonic = monotonic
        self._token_lifetime_s = token_lifetime_s
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_valid_until = -math.inf
        self.logins = 0

    def token(self) -> str:
        """A bearer token, logging in when none is cached or it is about to expire."""
        with self._lock:
            if self._token is None or self._monotonic() >= self._token_valid_until:
                self._token = self._login()
                self._token_valid_until = (
                    self._monotonic() + self._token_lifetime_s - TOKEN_RENEW_MARGIN_S
                )
            return self._token

    def _login(self) -> str:
        body = self.http.get_json(LOGIN_PATH, auth=self._credentials)
        self.logins += 1
        token = json_field(PROVIDER, body, "token")
        if not isinstance(token, str) or not token:
            raise ProviderError(PROVIDER, "login answered without a token")
        return token

    def _drop(self, token: str) -> None:
        with self._lock:
            if self._token == token:  # another thread may already hold a fresh one
                self._token = None

    def get(self, path: str, params: Mapping[str, str]) -> Any:
        """GET a data endpoint with the bearer token, renewing it once on 401."""
        token = self.token()
        try:
            return self.http.get_json(path, params=params, headers=_bearer(token))
        except ProviderAuthError as error:
            if error.status != 401 and error.json_body:
                raise  # a JSON 403 is a real refusal: the plan lacks this region or signal
            self._drop(token)
        return self.http.get_json(path, params=params, headers=_bearer(self.token()))

    def forecast(self, region: str, signal_type: str, horizon_hours: int) -> Any:
        return self.get(
            "v3/forecast",
            {
                "region": region,
                "signal_type": signal_type,
                "horizon_hours": str(horizon_hours),
            },
        )

    def historical(self, region: str, signal_type: str, start: datetime, end: datetime) -> Any:
        return self.get(
            "v3/historical",
            {
                "region": region,
                "signal_type": signal_type,
                "start": _iso(start),
                "end": _iso(end),
            },
        )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class WattTimeProvider:
    """WattTime as a ForecastProvider (zone = WattTime region, e.g. ``CAISO_NORTH``).

    Raises ConfigError for a ``signal_type`` that is not an emissions rate, and ProviderError
    for every fault (including units it cannot convert to g/kWh).
    """

    name = PROVIDER

    def __init__(
        self,
        client: WattTimeClient,
        *,
        signal_type: str = "co2_moer",
        horizon_s: float = DEFAULT_HORIZON_S,
        min_horizon_s: float = DEFAULT_MIN_HORIZON_S,
    ) -> None:
        if signal_type not in SIGNAL_TYPES:
            raise ConfigError(
                f"WattTime signal_type {signal_type!r} is not one of {sorted(SIGNAL_TYPES)}"
            )
        self.client = client
        self.signal_type = signal_type
        self.signal = SIGNAL_TYPES[signal_type]
        self.horizon_s = horizon_s
        self.min_horizon_s = min_horizon_s

    def forecast(self, zone: str, now: datetime) -> Forecast:
        hours = min(MAX_HORIZON_HOURS, max(1, math.ceil(self.horizon_s / 3600)))
        body = self.client.forecast(zone, self.signal_type, hours)
        meta = self._meta(body, zone)
        generated = meta.get("generated_at")
        series = build_series(
            provider=PROVIDER,
            zone=zone,
            kind=SeriesKind.FORECAST,
            signal=self.signal,
            issued_at=clamp_issued_at(parse_time(PROVIDER, generated) if generated else None, now),
            points=_points(json_array(PROVIDER, body, "data"), _unit_factor(meta)),
            resolution_s=_period_s(meta),
        )
        return trim_forecast(series, now, self.horizon_s, self.min_horizon_s)

    def actuals(self, zone: str, start: datetime, end: datetime) -> Forecast:
        found: list[tuple[datetime, float]] = []
        period_s: float | None = None
        chunk_start = start
        while chunk_start < end:
            chunk_end = min(end, chunk_start + timedelta(seconds=HISTORICAL_MAX_SPAN_S))
            body = self.client.historical(zone, self.signal_type, chunk_start, chunk_end)
            meta = self._meta(body, zone)
            period_s = _period_s(meta)
            found.extend(_points(json_array(PROVIDER, body, "data"), _unit_factor(meta)))
            chunk_start = chunk_end
        series = build_series(
            provider=PROVIDER,
            zone=zone,
            kind=SeriesKind.ACTUAL,
            signal=self.signal,
            issued_at=end,
            points=found,
            resolution_s=period_s,
        )
        return trim_actuals(series, start, end)

    def _meta(self, body: object, zone: str) -> Mapping[str, Any]:
        meta = json_field(PROVIDER, body, "meta")
        if not isinstance(meta, Mapping):
            raise ProviderError(PROVIDER, "response meta is not an object")
        if meta.get("region", zone) != zone:
            raise ProviderError(PROVIDER, f"asked for region {zone!r}, got {meta['region']!r}")
        signal = meta.get("signal_type", self.signal_type)
        if signal != self.signal_type:
            raise ProviderError(PROVIDER, f"asked for {self.signal_type}, got {signal!r}")
        return meta


def _period_s(meta: Mapping[str, Any]) -> float:
    return as_number(PROVIDER, json_field(PROVIDER, meta, "data_point_period_seconds"))


def _unit_factor(meta: Mapping[str, Any]) -> float:
    units = json_field(PROVIDER, meta, "units")
    if units not in UNIT_TO_G_PER_KWH:
        raise ProviderError(PROVIDER, f"cannot convert units {units!r} to g/kWh", retryable=False)
    return UNIT_TO_G_PER_KWH[units]


def _points(data: object, factor: float) -> Iterator[tuple[datetime, float]]:
    for item in json_array(PROVIDER, data):
        value = as_number(PROVIDER, json_field(PROVIDER, item, "value"))
        yield parse_time(PROVIDER, json_field(PROVIDER, item, "point_time")), value * factor

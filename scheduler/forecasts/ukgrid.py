"""UK (NESO) Carbon Intensity API: national and regional 48 h forecasts and actuals, half-hourly.

No key. Zones: ``GB`` is the national series (``/intensity/...``); ``GB-<id>`` is one of the
API's regions 1-18 (``/regional/.../regionid/<id>``; 1-14 the DNO regions, 15 England,
16 Scotland, 17 Wales, 18 GB). Values are gCO2/kWh of the GB system, operational (not life-cycle).

The regional API publishes no ``actual`` field, so a region's actuals are the API's own
estimates for closed half-hours; national actuals are the measured ``actual`` values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.domain import Forecast, ProviderError, SeriesKind
from scheduler.forecasts.http import HttpSettings, JsonHttpClient
from scheduler.forecasts.validation import (
    DEFAULT_MIN_HORIZON_S,
    build_series,
    json_array,
    json_field,
    optional_number,
    parse_time,
    trim_actuals,
    trim_forecast,
)

PROVIDER = "ukgrid"
DEFAULT_BASE_URL = "https://api.carbonintensity.org.uk"
NATIONAL_ZONE = "GB"
REGIONAL_PREFIX = "GB-"
REGION_IDS = range(1, 19)
HALF_HOUR_S = 1800
FORWARD_HORIZON_S = 48 * 3600.0  # what fw48h returns
# The API refuses ranges longer than this in one call.
RANGE_MAX_SPAN_S = 14 * 24 * 3600.0


def _path_time(when: datetime) -> str:
    """The API's path timestamp format, ``YYYY-MM-DDThh:mmZ``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def floor_half_hour(when: datetime) -> datetime:
    when = when.astimezone(UTC)
    return when.replace(minute=when.minute - when.minute % 30, second=0, microsecond=0)


def region_id(zone: str) -> int | None:
    """None for the national zone ``GB``, the region id for ``GB-<id>``.

    Raises ProviderError (not retryable) for any other zone: no request is made for it.
    """
    if zone == NATIONAL_ZONE:
        return None
    suffix = zone.removeprefix(REGIONAL_PREFIX)
    if zone.startswith(REGIONAL_PREFIX) and suffix.isdigit() and int(suffix) in REGION_IDS:
        return int(suffix)
    raise ProviderError(
        PROVIDER,
        f"unknown zone {zone!r}: use 'GB' or 'GB-<1..18>'",
        retryable=False,
    )


class UkGridClient:
    """Raw endpoints of the Carbon Intensity API. Returns decoded JSON."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        http_settings: HttpSettings | None = None,
    ) -> None:
        self.http = JsonHttpClient(PROVIDER, base_url, settings=http_settings)

    def national_forward(self, start: datetime) -> Any:
        return self.http.get_json(f"intensity/{_path_time(start)}/fw48h")

    def national_range(self, start: datetime, end: datetime) -> Any:
        return self.http.get_json(f"intensity/{_path_time(start)}/{_path_time(end)}")

    def regional_forward(self, start: datetime, region: int) -> Any:
        return self.http.get_json(f"regional/intensity/{_path_time(start)}/fw48h/regionid/{region}")

    def regional_range(self, start: datetime, end: datetime, region: int) -> Any:
        return self.http.get_json(
            f"regional/intensity/{_path_time(start)}/{_path_time(end)}/regionid/{region}",
        )


class UkGridProvider:
    """The Carbon Intensity API as a ForecastProvider. Raises ProviderError for every fault."""

    name = PROVIDER

    def __init__(
        self,
        client: UkGridClient,
        *,
        horizon_s: float = FORWARD_HORIZON_S,
        min_horizon_s: float = DEFAULT_MIN_HORIZON_S,
    ) -> None:
        self.client = client
        self.horizon_s = horizon_s
        self.min_horizon_s = min_horizon_s

    def forecast(self, zone: str, now: datetime) -> Forecast:
        region = region_id(zone)
        start = floor_half_hour(now)
        if region is None:
            slots = _national_slots(self.client.national_forward(start))
        else:
            slots = _regional_slots(self.client.regional_forward(start, region), region)
        series = build_series(
            provider=PROVIDER,
            zone=zone,
            kind=SeriesKind.FORECAST,
            issued_at=now,
            points=_values(slots, "forecast"),
            resolution_s=HALF_HOUR_S,
        )
        return trim_forecast(series, now, self.horizon_s, self.min_horizon_s)

    def actuals(self, zone: str, start: datetime, end: datetime) -> Forecast:
        region = region_id(zone)
        found: list[tuple[datetime, float]] = []
        chunk_start = floor_half_hour(start)
        while chunk_start < end:
            chunk_end = min(end, chunk_start + timedelta(seconds=RANGE_MAX_SPAN_S))
            if region is None:
                slots = _national_slots(self.client.national_range(chunk_start, chunk_end))
                found.extend(_values(slots, "actual"))
            else:
                body = self.client.regional_range(chunk_start, chunk_end, region)
                found.extend(_values(_regional_slots(body, region), "forecast"))
            chunk_start = chunk_end
        series = build_series(
            provider=PROVIDER,
            zone=zone,
            kind=SeriesKind.ACTUAL,
            issued_at=end,
            points=found,
            resolution_s=HALF_HOUR_S,
        )
        return trim_actuals(series, start, end)


def _national_slots(body: object) -> Sequence[Any]:
    return json_array(PROVIDER, body, "data")


def _regional_slots(body: object, region: int) -> Sequence[Any]:
    """Slots of the single-region shape: ``{"data": {"regionid": .., "data": [...]}}``."""
    block = json_field(PROVIDER, body, "data")
    got = json_field(PROVIDER, block, "regionid")
    if got != region:
        raise ProviderError(PROVIDER, f"asked for region {region}, got {got!r}")
    return json_array(PROVIDER, block, "data")


def _values(slots: Sequence[Any], key: str) -> Iterator[tuple[datetime, float]]:
    """``(from, intensity[key])`` for each half-hour; null values (periods not closed yet for
    ``actual``) are skipped."""
    for slot in slots:
        intensity = json_field(PROVIDER, slot, "intensity")
        value = optional_number(PROVIDER, json_field(PROVIDER, intensity, key))
        if value is not None:
            yield parse_time(PROVIDER, json_field(PROVIDER, slot, "from")), value

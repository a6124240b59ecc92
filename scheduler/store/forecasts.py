"""The SQL ForecastStore: every series fetched, append-only, as a header plus its points.

Series are keyed by ``(zone, provider)``: two regions on one grid zone through different
providers never read each other's series. Every read takes an optional ``provider``; None reads
the zone across providers (tools and old callers), a region's reads pass its provider.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from scheduler.domain import Forecast, IntensityPoint, SeriesKind, Signal
from scheduler.store.engine import SqlAdapter, read_transaction, write_transaction
from scheduler.store.tables import forecast_points, forecasts


class SqlForecastStore(SqlAdapter):
    """ForecastStore over SQLAlchemy Core. Series are never updated, only appended and pruned."""

    def append_forecast(self, forecast: Forecast) -> None:
        """Store ``forecast`` as a new series, even if an identical one exists: what was
        fetched is recorded as fetched."""
        header = {
            "zone": forecast.zone,
            "provider": forecast.provider,
            "kind": forecast.kind.value,
            "signal": forecast.signal.value,
            "issued_at": forecast.issued_at,
            "resolution_s": forecast.resolution_s,
        }
        with write_transaction(self._engine) as conn:
            series_id = conn.execute(
                sa.insert(forecasts).values(header).returning(forecasts.c.id)
            ).scalar_one()
            if forecast.points:
                conn.execute(
                    sa.insert(forecast_points),
                    [
                        {"series_id": series_id, "valid_at": p.valid_at, "g_per_kwh": p.g_per_kwh}
                        for p in forecast.points
                    ],
                )

    def latest_forecast(
        self,
        zone: str,
        as_of: datetime,
        kind: SeriesKind = SeriesKind.FORECAST,
        *,
        provider: str | None = None,
    ) -> Forecast | None:
        """The series of ``kind`` for ``zone`` (from ``provider`` when given) with the greatest
        ``issued_at <= as_of`` (the last one stored wins a tie); None when there is none."""
        query = (
            sa.select(forecasts)
            .where(
                forecasts.c.zone == zone,
                *_of_provider(provider),
                forecasts.c.kind == kind.value,
                forecasts.c.issued_at <= as_of,
            )
            .order_by(forecasts.c.issued_at.desc(), forecasts.c.id.desc())
            .limit(1)
        )
        with read_transaction(self._engine) as conn:
            header = conn.execute(query).mappings().first()
            if header is None:
                return None
            points = _points_by_series(conn, [header["id"]])
        return _series(header, points[header["id"]])

    def actuals(
        self, zone: str, start: datetime, end: datetime, *, provider: str | None = None
    ) -> Forecast | None:
        """Actual points for ``zone`` whose validity overlaps ``[start, end)``, merged over every
        stored actual series: for one ``valid_at`` the latest issue wins. A point valid from
        before ``start`` that still covers it is included, so an interval starting mid-hour is
        priced. The result carries the latest contributing series' provider, signal and
        resolution, and the latest ``issued_at``; None when no point overlaps. With
        ``provider``, only that provider's series count."""
        with read_transaction(self._engine) as conn:
            widest_s = conn.execute(
                sa.select(sa.func.max(forecasts.c.resolution_s)).where(
                    forecasts.c.zone == zone,
                    *_of_provider(provider),
                    forecasts.c.kind == SeriesKind.ACTUAL.value,
                )
            ).scalar_one_or_none()
            if widest_s is None:
                return None
            query = (
                sa.select(
                    forecast_points.c.valid_at,
                    forecast_points.c.g_per_kwh,
                    forecasts.c.id,
                    forecasts.c.issued_at,
                    forecasts.c.resolution_s,
                    forecasts.c.provider,
                    forecasts.c.signal,
                )
                .join(forecasts, forecasts.c.id == forecast_points.c.series_id)
                .where(
                    forecasts.c.zone == zone,
                    *_of_provider(provider),
                    forecasts.c.kind == SeriesKind.ACTUAL.value,
                    forecast_points.c.valid_at < end,
                    forecast_points.c.valid_at >= start - timedelta(seconds=widest_s),
                )
                .order_by(
                    forecast_points.c.valid_at, forecasts.c.issued_at.desc(), forecasts.c.id.desc()
                )
            )
            rows = conn.execute(query).mappings().all()
        return _merge_actuals(zone, start, rows)

    def forecasts_between(
        self, zone: str, start: datetime, end: datetime, *, provider: str | None = None
    ) -> list[Forecast]:
        """Every forecast (not actual) series for ``zone`` (from ``provider`` when given)
        issued in ``[start, end)``, oldest first."""
        query = (
            sa.select(forecasts)
            .where(
                forecasts.c.zone == zone,
                *_of_provider(provider),
                forecasts.c.kind == SeriesKind.FORECAST.value,
                forecasts.c.issued_at >= start,
                forecasts.c.issued_at < end,
            )
            .order_by(forecasts.c.issued_at, forecasts.c.id)
        )
        with read_transaction(self._engine) as conn:
            headers = conn.execute(query).mappings().all()
            points = _points_by_series(conn, [h["id"] for h in headers])
        return [_series(h, points[h["id"]]) for h in headers]

    def prune_forecasts(self, before: datetime) -> int:
        """Delete every series (forecasts and actuals) issued before ``before``, with its
        points; returns how many series went."""
        old = sa.select(forecasts.c.id).where(forecasts.c.issued_at < before)
        with write_transaction(self._engine) as conn:
            conn.execute(sa.delete(forecast_points).where(forecast_points.c.series_id.in_(old)))
            result = conn.execute(sa.delete(forecasts).where(forecasts.c.issued_at < before))
        return int(result.rowcount)


def _of_provider(provider: str | None) -> tuple[sa.ColumnElement[bool], ...]:
    return () if provider is None else (forecasts.c.provider == provider,)


def _points_by_series(
    conn: Connection,
    series_ids: Sequence[int],
) -> dict[int, list[IntensityPoint]]:
    by_series: dict[int, list[IntensityPoint]] = defaultdict(list)
    if not series_ids:
        return by_series
    query = (
        sa.select(forecast_points)
        .where(forecast_points.c.series_id.in_(series_ids))
        .order_by(forecast_points.c.series_id, forecast_points.c.valid_at)
    )
    for row in conn.execute(query).mappings():
        by_series[row["series_id"]].append(
            IntensityPoint(valid_at=row["valid_at"], g_per_kwh=float(row["g_per_kwh"]))
        )
    return by_series


def _series(header: RowMapping, points: list[IntensityPoint]) -> Forecast:
    return Forecast(
        zone=header["zone"],
        provider=header["provider"],
        kind=SeriesKind(header["kind"]),
        issued_at=header["issued_at"],
        resolution_s=header["resolution_s"],
        points=tuple(points),
        signal=Signal(header["signal"]),
    )


def _merge_actuals(zone: str, start: datetime, rows: Sequence[RowMapping]) -> Forecast | None:
    """Rows come ordered by valid_at, then latest issue first: the first row per valid_at
    wins. A row whose own series' validity ends by ``start`` is not in the interval."""
    points: list[IntensityPoint] = []
    latest: RowMapping | None = None
    last_valid_at: datetime | None = None
    for row in rows:
        valid_at: datetime = row["valid_at"]
        if valid_at == last_valid_at:
            continue
        last_valid_at = valid_at
        if valid_at + timedelta(seconds=row["resolution_s"]) <= start:
            continue
        points.append(IntensityPoint(valid_at=valid_at, g_per_kwh=float(row["g_per_kwh"])))
        if latest is None or (row["issued_at"], row["id"]) > (latest["issued_at"], latest["id"]):
            latest = row
    if latest is None:
        return None
    return Forecast(
        zone=zone,
        provider=latest["provider"],
        kind=SeriesKind.ACTUAL,
        issued_at=latest["issued_at"],
        resolution_s=latest["resolution_s"],
        points=tuple(points),
        signal=Signal(latest["signal"]),
    )

"""The savings report over many jobs, from sums the database made (``EnergyBucket``, ``JobCount``).

Pure: no I/O, no clock. The per-job report (``scheduler.reports.savings``) prices each job's
energy profile exactly; over a million jobs that means a million profiles loaded into Python.
Here the store has already summed the energy per hour it was drawn and per hour it would have
been drawn at home, so the work is one hourly intensity per zone and hour, whatever the number
of jobs. The totals differ from the per-job report only by attributing each energy report to
the hour its interval starts in (runners report every 30 s), and by counting jobs that started
(with or without a report yet). The report lists no jobs (``jobs`` is empty): its groups are
the point at this scale.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from scheduler.domain import J_PER_KWH, Forecast, ForecastUnavailable, Region
from scheduler.domain.savings import EnergyBucket, JobCount
from scheduler.reports.emissions import IntensitySource, ZoneIntensity
from scheduler.reports.savings import (
    PERIODS,
    GroupSavings,
    SavingsReport,
    SkippedJob,
    period_label,
)

HOUR_S = 3600.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Sums:
    """Running sums of one group."""

    __slots__ = ("baseline_g", "emissions_g", "energy_kwh", "jobs")

    def __init__(self) -> None:
        self.jobs = 0
        self.energy_kwh = self.emissions_g = self.baseline_g = 0.0

    def group(self, key: str) -> GroupSavings:
        saved_g = self.baseline_g - self.emissions_g
        return GroupSavings(
            key=key,
            jobs=self.jobs,
            energy_kwh=self.energy_kwh,
            emissions_g=self.emissions_g,
            baseline_g=self.baseline_g,
            saved_g=saved_g,
            saved_pct=100.0 * saved_g / self.baseline_g if self.baseline_g != 0 else None,
        )


def build_aggregate_report(
    *,
    buckets: Sequence[EnergyBucket],
    counts: Sequence[JobCount],
    regions: Mapping[str, Region],
    actuals: Mapping[str, Forecast],
    forecasts: Mapping[str, Forecast],
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    period: str = "day",
) -> SavingsReport:
    """Totals by tenant, region and period from the store's sums (see the module docstring).

    ``actuals`` and ``forecasts`` are keyed by grid zone. Energy and its emissions fall in the
    period they were drawn in, the baseline in the period it would have been drawn in, jobs in
    the period they started in. Energy in a region that is not configured,
    or in a zone with no intensity data at all, is left out and listed in ``skipped`` (one
    entry per region). Raises ValueError for an unknown ``period``.
    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}; got {period!r}")
    prices = _HourlyPrices(actuals, forecasts)
    total = _Sums()
    by_tenant: defaultdict[str, _Sums] = defaultdict(_Sums)
    by_region: defaultdict[str, _Sums] = defaultdict(_Sums)
    by_period: defaultdict[str, _Sums] = defaultdict(_Sums)
    skipped: dict[str, str] = {}
    for b in buckets:
        reason = prices.problem(regions, b.region) or prices.problem(regions, b.home_region)
        if reason is not None:
            skipped.setdefault(b.region, reason)
            continue
        # Emissions and baseline are separable sums: the run's energy where and when it was
        # drawn, the baseline's at home and when it would have been drawn.
        priced_in = regions[b.home_region] if b.baseline else regions[b.region]
        grams = b.energy_j / J_PER_KWH * priced_in.pue * prices.at(priced_in.grid_zone, b.hour)
        label = period_label(b.hour, period)
        for sums in (total, by_tenant[b.tenant], by_region[b.region], by_period[label]):
            if b.baseline:
                sums.baseline_g += grams
            else:
                sums.energy_kwh += b.energy_j / J_PER_KWH
                sums.emissions_g += grams
    for c in counts:
        if c.region in skipped:
            continue
        label = period_label(c.day, period)
        for sums in (total, by_tenant[c.tenant], by_region[c.region], by_period[label]):
            sums.jobs += c.jobs
    return SavingsReport(
        generated_at=now.astimezone(UTC),
        start=start.astimezone(UTC) if start is not None else None,
        end=end.astimezone(UTC) if end is not None else None,
        period=period,
        jobs=(),
        total=total.group("total"),
        by_tenant=_groups(by_tenant),
        by_region=_groups(by_region),
        by_period=_groups(by_period),
        skipped=tuple(
            SkippedJob(job_id=f"region:{name}", reason=reason) for name, reason in skipped.items()
        ),
    )


def _groups(sums: Mapping[str, _Sums]) -> tuple[GroupSavings, ...]:
    return tuple(sums[key].group(key) for key in sorted(sums))


class _HourlyPrices:
    """Mean intensity per zone and UTC hour (actual first, then forecast, then the last known
    value), computed once per zone and hour."""

    def __init__(self, actuals: Mapping[str, Forecast], forecasts: Mapping[str, Forecast]):
        self._actuals, self._forecasts = actuals, forecasts
        self._zones: dict[str, ZoneIntensity] = {}
        self._cache: dict[tuple[str, datetime], float] = {}
        self.worst = IntensitySource.ACTUAL

    def problem(self, regions: Mapping[str, Region], name: str) -> str | None:
        """Why energy in region ``name`` cannot be priced (not configured, no data in its
        zone at all), or None."""
        region = regions.get(name)
        if region is None:
            return f"region {name!r} is not configured"
        try:
            self.at(region.grid_zone, _EPOCH)
        except ForecastUnavailable as e:
            return str(e)
        return None

    def at(self, zone: str, hour: datetime) -> float:
        """g/kWh over the hour from ``hour``. Raises ForecastUnavailable for a zone with no
        data at all."""
        key = (zone, hour)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        intensity = self._zones.get(zone)
        if intensity is None:
            intensity = ZoneIntensity.of(zone, self._actuals.get(zone), self._forecasts.get(zone))
            self._zones[zone] = intensity
        a_s = hour.timestamp()
        integral_g, _source = intensity.integral(a_s, a_s + HOUR_S)
        value = self._cache[key] = integral_g / HOUR_S
        return value


def span(buckets: Iterable[EnergyBucket]) -> tuple[datetime, datetime] | None:
    """The hours the buckets' runs and baselines cover, ``[first, last)``; None when empty."""
    hours = [b.hour for b in buckets]
    if not hours:
        return None
    last = max(hours)
    return min(hours), datetime.fromtimestamp(last.timestamp() + HOUR_S, tz=UTC)


__all__ = ["build_aggregate_report", "span"]

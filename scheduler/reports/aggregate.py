"""The savings report over many jobs, from sums the database made (``EnergyBucket``, ``JobCount``).

Pure: no I/O, no clock. The per-job report (``scheduler.reports.savings``) prices each job's
energy profile exactly; over a million jobs that means a million profiles loaded into Python.
Here the store has already summed the energy per hour it was drawn and per hour it would have
been drawn at home, so the work is one hourly intensity per zone and hour, whatever the number
of jobs. The totals differ from the per-job report only by attributing each energy report to
the hour its interval starts in (runners report every 30 s), and by counting jobs that started
(with or without a report yet). The report lists no jobs (``jobs`` is empty): its groups are
the point at this scale.

Job-level figures come from the store's per-day sums (``JobCount``): mean delay, deadline
misses, moved shares and embodied emissions (GPU- and core-seconds x the factors) equal the
per-job report's, and so do the functional units and the figures per R (summed from the job
rows). The p95 delay is None here: SQLite has no percentile aggregate, and one figure that
differs by database would be worse than none.

Deployments, few at any scale, come per job: a relocated one's buckets are filed under the
region it is in now but priced where each copy drew the energy (``EnergyBucket.drawn_in``), as
the per-job report prices each attempt in ``attempt_region``; its moves come as counts of no
jobs (``JobCount.relocations``). The packing credit runs the per-job report's own function
(``scheduler.reports.packing_credit``) over the shared deployments' run bounds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from scheduler.domain import J_PER_KWH, Forecast, ForecastUnavailable, Region
from scheduler.domain.savings import EnergyBucket, JobCount, RunBounds
from scheduler.reports.emissions import IntensitySource, ZoneIntensity
from scheduler.reports.packing_credit import PackingCredit, packing_credit, runs_of_bounds
from scheduler.reports.savings import (
    GROUPINGS,
    NO_GROUP,
    PERIODS,
    GroupSavings,
    SavingsReport,
    SkippedJob,
    period_label,
)
from scheduler.reports.sci import EmbodiedFactors, factors_for, per_unit, shared_units

HOUR_S = 3600.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Sums:
    """Running sums of one group."""

    __slots__ = (
        "baseline_g",
        "delay_s",
        "embodied_g",
        "emissions_g",
        "energy_kwh",
        "estimated_kwh",
        "jobs",
        "misses",
        "moved_in_space",
        "moved_in_time",
        "relocation_saving_g",
        "relocations",
        "unit_names",
        "units",
        "units_jobs",
    )

    def __init__(self) -> None:
        self.jobs = self.misses = self.moved_in_time = self.moved_in_space = 0
        self.energy_kwh = self.estimated_kwh = self.emissions_g = self.baseline_g = 0.0
        self.delay_s = self.embodied_g = self.units = 0.0
        self.units_jobs = 0
        self.unit_names: set[str] = set()
        self.relocations = 0
        self.relocation_saving_g: float | None = None

    def add_count(self, c: JobCount, factors: EmbodiedFactors) -> None:
        self.jobs += c.jobs
        self.delay_s += c.delay_s
        self.misses += c.deadline_misses
        self.moved_in_time += c.moved_in_time
        self.moved_in_space += c.moved_in_space
        self.units += c.units
        self.units_jobs += c.units_jobs
        self.unit_names |= c.unit_names
        self.relocations += c.relocations
        if c.relocation_expected_saving_g is not None:
            self.relocation_saving_g = (
                self.relocation_saving_g or 0.0
            ) + c.relocation_expected_saving_g
        self.embodied_g += (
            c.gpu_s * factors.gpu_g_per_hour + c.cpu_s * factors.cpu_core_g_per_hour
        ) / HOUR_S

    def group(self, key: str) -> GroupSavings:
        saved_g = self.baseline_g - self.emissions_g
        n = self.jobs
        units, unit = shared_units(n, self.units_jobs, self.units, self.unit_names)
        figures = per_unit(
            operational_g=self.emissions_g,
            embodied_g=self.embodied_g,
            energy_kwh=self.energy_kwh,
            units=units,
            unit=unit,
        )
        return GroupSavings(
            key=key,
            jobs=n,
            energy_kwh=self.energy_kwh,
            emissions_g=self.emissions_g,
            baseline_g=self.baseline_g,
            saved_g=saved_g,
            saved_pct=100.0 * saved_g / self.baseline_g if self.baseline_g != 0 else None,
            measured_kwh=self.energy_kwh - self.estimated_kwh,
            estimated_kwh=self.estimated_kwh,
            embodied_g=self.embodied_g,
            mean_delay_s=self.delay_s / n if n else None,
            p95_delay_s=None,
            deadline_misses=self.misses,
            moved_in_time_share=self.moved_in_time / n if n else None,
            moved_in_space_share=self.moved_in_space / n if n else None,
            functional_units=units,
            functional_unit=unit,
            sci_g_per_r=figures.sci_g_per_r,
            energy_kwh_per_1k_requests=figures.energy_kwh_per_1k_requests,
            emissions_g_per_1k_requests=figures.emissions_g_per_1k_requests,
            relocations=self.relocations,
            relocation_expected_saving_g=self.relocation_saving_g,
        )


def _key_of(
    group_by: str | None,
    tenant: str,
    region: str,
    split: str | None,
    when: datetime,
) -> str | None:
    if group_by is None:
        return None
    if group_by == "tenant":
        return tenant
    if group_by == "region":
        return region
    if group_by in PERIODS:
        return period_label(when, group_by)
    return split if split is not None else NO_GROUP


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
    group_by: str | None = None,
    embodied: EmbodiedFactors | None = None,
    embodied_by_region: Mapping[str, EmbodiedFactors] | None = None,
    shared: Sequence[RunBounds] = (),
    idle_gpu_w: float | None = None,
) -> SavingsReport:
    """Totals by tenant, region and period from the store's sums (see the module docstring).

    ``actuals`` and ``forecasts`` are keyed by grid zone. Energy and its emissions fall in the
    period they were drawn in, the baseline in the period it would have been drawn in, jobs in
    the period they started in. Energy in a region that is not configured,
    or in a zone with no intensity data at all, is left out and listed in ``skipped`` (one
    entry per region). ``group_by`` ``kind`` and ``group`` need buckets and counts split by
    that column (``split_key``). ``embodied_by_region`` overrides ``embodied`` per region
    name. SCI per R: see ``scheduler.reports.sci.shared_units``. ``shared``: the run bounds of
    the jobs holding a share of one GPU, credited with ``idle_gpu_w`` as the per-job report
    does (``packing``; runs bounded by ``start``/``end`` as that report's rows are). A moved
    deployment's buckets are filed under its region and priced where they were drawn
    (``drawn_in``). Raises ValueError for an unknown ``period`` or ``group_by``.
    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}; got {period!r}")
    if group_by is not None and group_by not in GROUPINGS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPINGS)}; got {group_by!r}")
    factors = embodied if embodied is not None else EmbodiedFactors()
    by_key: defaultdict[str, _Sums] = defaultdict(_Sums)
    prices = _HourlyPrices(actuals, forecasts)
    total = _Sums()
    by_tenant: defaultdict[str, _Sums] = defaultdict(_Sums)
    by_region: defaultdict[str, _Sums] = defaultdict(_Sums)
    by_period: defaultdict[str, _Sums] = defaultdict(_Sums)
    skipped: dict[str, str] = {}
    for b in buckets:
        drawn_in = b.drawn_in or b.region
        reason = (
            prices.problem(regions, b.region)
            or prices.problem(regions, drawn_in)
            or prices.problem(regions, b.home_region)
        )
        if reason is not None:
            skipped.setdefault(b.region, reason)
            continue
        # Emissions and baseline are separable sums: the run's energy where and when it was
        # drawn, the baseline's at home and when it would have been drawn.
        priced_in = regions[b.home_region] if b.baseline else regions[drawn_in]
        grams = b.energy_j / J_PER_KWH * priced_in.pue * prices.at(priced_in.grid_zone, b.hour)
        label = period_label(b.hour, period)
        targets = [total, by_tenant[b.tenant], by_region[b.region], by_period[label]]
        key = _key_of(group_by, b.tenant, b.region, b.split_key, b.hour)
        if key is not None:
            targets.append(by_key[key])
        for sums in targets:
            if b.baseline:
                sums.baseline_g += grams
            else:
                sums.energy_kwh += b.energy_j / J_PER_KWH
                sums.estimated_kwh += b.estimated_j / J_PER_KWH
                sums.emissions_g += grams
    for c in counts:
        if c.region in skipped:
            continue
        label = period_label(c.day, period)
        targets = [total, by_tenant[c.tenant], by_region[c.region], by_period[label]]
        key = _key_of(group_by, c.tenant, c.region, c.split_key, c.day)
        if key is not None:
            targets.append(by_key[key])
        region_factors = factors_for(c.region, factors, embodied_by_region)
        for sums in targets:
            sums.add_count(c, region_factors)
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
        group_by=group_by,
        groups=_groups(by_key) if group_by is not None else (),
        packing=None
        if idle_gpu_w is None
        else _packing(shared, prices, regions, idle_gpu_w, now, start, end),
    )


def _packing(
    shared: Sequence[RunBounds],
    prices: _HourlyPrices,
    regions: Mapping[str, Region],
    idle_gpu_w: float,
    now: datetime,
    start: datetime | None,
    end: datetime | None,
) -> PackingCredit | None:
    # The per-job report has no row, so no run, for a job it could not price.
    priced = [
        b
        for b in shared
        if prices.problem(regions, b.region) is None
        and prices.problem(regions, b.home_region) is None
    ]
    runs = runs_of_bounds(priced, now, start=start, end=end)
    return packing_credit(runs, idle_gpu_w=idle_gpu_w, regions=regions, zone_of=prices.zone)


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

    def zone(self, region: Region) -> ZoneIntensity:
        """The intensity of ``region``'s zone (built once per zone)."""
        return self._zone(region.grid_zone)

    def _zone(self, zone: str) -> ZoneIntensity:
        intensity = self._zones.get(zone)
        if intensity is None:
            intensity = ZoneIntensity.of(zone, self._actuals.get(zone), self._forecasts.get(zone))
            self._zones[zone] = intensity
        return intensity

    def at(self, zone: str, hour: datetime) -> float:
        """g/kWh over the hour from ``hour``. Raises ForecastUnavailable for a zone with no
        data at all."""
        key = (zone, hour)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        intensity = self._zone(zone)
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

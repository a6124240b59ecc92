"""The carbon-savings report: what each job emitted, what it would have emitted, the difference.

Pure: no I/O and no clock (``now`` is a parameter). The caller loads jobs, energy reports,
regions and each zone's actuals and forecast; this module prices them (see
``scheduler.reports.emissions``) and groups the results.

- **Emissions**: the job's measured energy profile (every report of every attempt, each spread
  uniformly over its interval) x the PUE of the region it ran in x that region's zone intensity.
- **Baseline**: the same profile shifted to start at submit time (``created_at``), in the home
  region's zone and PUE: what running it at once, at home, would have emitted.
- **Saved**: baseline - emissions (negative when the shift made things worse), and % of baseline.
- **Embodied** (SCI's M, ``scheduler.reports.sci``): run time (start to finish, to ``now``
  while running) x (GPUs x g per GPU-hour + cores x g per core-hour).
- **Delay**: start - submit. **Moved in time**: a delay over one planning step (``step_s``).
  **Moved in space**: ran outside its home region. **Deadline miss**: finished after its
  effective deadline (``deadline``, else submit + ``max_delay_s`` + expected duration).
- **p95 delay**: nearest rank (the smallest delay at or above 95 % of the group's delays).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from scheduler.domain import (
    J_PER_KWH,
    TERMINAL_STATES,
    EnergyReport,
    Forecast,
    ForecastUnavailable,
    Job,
    JobState,
    MeterMethod,
    Region,
    RegionNotFound,
    effective_deadline,
)
from scheduler.domain.deployments import attempt_region
from scheduler.domain.progress import JobProgress
from scheduler.reports.emissions import (
    EnergySlice,
    IntensitySource,
    ZoneIntensity,
    profile_emissions_g,
    worst_source,
)
from scheduler.reports.packing_credit import PackingCredit, packing_credit, shared_runs
from scheduler.reports.sci import EmbodiedFactors, embodied_g, factors_for, per_unit, shared_units

PERIODS = ("day", "week", "month")
GROUPINGS = ("tenant", "region", "kind", "day", "week", "month", "group")
NO_GROUP = "-"  # the ``group`` key of jobs outside any array or sweep

# Jobs that drew energy and will draw no more, or are drawing it now.
COUNTED_STATES = TERMINAL_STATES | {JobState.RUNNING, JobState.RELOCATING}


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSavings:
    """One job's figures. Grams are CO2e; ``saved_pct`` is None when the baseline is 0 g.

    ``started_at`` is when the job (first) started: its recorded start, or its first energy
    interval when that is earlier. ``finished_at`` is None while it runs. ``intensity_source``
    is the worst source behind either figure: ``actual``, ``forecast`` or ``extrapolated``.
    """

    job_id: str
    tenant: str
    name: str
    state: JobState
    region: str
    home_region: str
    submitted_at: datetime
    started_at: datetime
    finished_at: datetime | None
    energy_kwh: float
    emissions_g: float
    baseline_g: float
    saved_g: float
    saved_pct: float | None
    delay_s: float
    energy_estimated: bool
    intensity_source: str
    kind: str = "training"
    group_id: str | None = None
    estimated_kwh: float = 0.0
    run_s: float = 0.0
    embodied_g: float = 0.0
    deadline_missed: bool = False
    moved_in_time: bool = False
    moved_in_space: bool = False
    # SCI's R (``scheduler.reports.sci``): the count of ``functional_unit`` (steps, requests)
    # and the figures per 1,000 of them; None without a count (a group: see shared_units).
    functional_units: float | None = None
    functional_unit: str | None = None
    sci_g_per_r: float | None = None
    energy_kwh_per_1k_requests: float | None = None
    emissions_g_per_1k_requests: float | None = None
    # A deployment's completed moves and the saving they were expected to make (the forecast
    # behind each decision, over its horizon; None without a move). Measured: the job's
    # /v1/deployments/{id}/relocations. ``emissions_g`` prices each copy where it ran.
    relocations: int = 0
    relocation_expected_saving_g: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupSavings:
    """Sums over the jobs sharing ``key`` (a tenant, a region, a period label, or ``total``).

    ``energy_kwh`` = ``measured_kwh`` + ``estimated_kwh``; ``emissions_g`` is operational
    (E x PUE x I). Shares are 0..1, None for no jobs; ``p95_delay_s`` is None where the
    report was summed by the database (see ``scheduler.reports.aggregate``).
    """

    key: str
    jobs: int
    energy_kwh: float
    emissions_g: float
    baseline_g: float
    saved_g: float
    saved_pct: float | None
    measured_kwh: float = 0.0
    estimated_kwh: float = 0.0
    embodied_g: float = 0.0
    mean_delay_s: float | None = None
    p95_delay_s: float | None = None
    deadline_misses: int = 0
    moved_in_time_share: float | None = None
    moved_in_space_share: float | None = None
    # SCI's R (``scheduler.reports.sci``): the count of ``functional_unit`` (steps, requests)
    # and the figures per 1,000 of them; None without a count (a group: see shared_units).
    functional_units: float | None = None
    functional_unit: str | None = None
    sci_g_per_r: float | None = None
    energy_kwh_per_1k_requests: float | None = None
    emissions_g_per_1k_requests: float | None = None
    # The group's deployments' completed moves and the saving they were expected to make
    # (None when none of its jobs moved), as on the job rows.
    relocations: int = 0
    relocation_expected_saving_g: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedJob:
    """A job that counts but could not be priced (unknown region, zone with no data at all)."""

    job_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportFilters:
    """What a report was narrowed to besides its time range (None: not filtered on it)."""

    tenant: str | None = None
    region: str | None = None
    group_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SavingsReport:
    """The whole report. ``start``/``end`` bound job start times (end exclusive; None = open).

    Period labels are UTC: ``2024-05-01`` (day), ``2024-W18`` (ISO week), ``2024-05`` (month).
    ``jobs`` is ordered by start; groups by key (periods chronologically). Skipped jobs are in
    no total.
    """

    generated_at: datetime
    start: datetime | None
    end: datetime | None
    period: str
    jobs: tuple[JobSavings, ...]
    total: GroupSavings
    by_tenant: tuple[GroupSavings, ...]
    by_region: tuple[GroupSavings, ...]
    by_period: tuple[GroupSavings, ...]
    skipped: tuple[SkippedJob, ...] = ()
    filters: ReportFilters = field(default_factory=lambda: ReportFilters())
    group_by: str | None = None
    groups: tuple[GroupSavings, ...] = ()
    # GPUs powered with and without packing shared deployments, and the idle energy saved
    # (``scheduler.reports.packing_credit``); None without such deployments or an idle power.
    packing: PackingCredit | None = None


def build_savings_report(
    *,
    jobs: Sequence[Job],
    energy_reports: Sequence[EnergyReport],
    regions: Mapping[str, Region],
    actuals: Mapping[str, Forecast],
    forecasts: Mapping[str, Forecast],
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    period: str = "day",
    group_by: str | None = None,
    step_s: float = 300.0,
    embodied: EmbodiedFactors | None = None,
    embodied_by_region: Mapping[str, EmbodiedFactors] | None = None,
    progress: Mapping[str, JobProgress] | None = None,
    idle_gpu_w: float | None = None,
) -> SavingsReport:
    """Price every counted job and group the results.

    A job counts when it is finished (succeeded, failed, cancelled) or running, and has at least
    one energy report. ``regions`` is keyed by region name, ``actuals`` and ``forecasts`` by grid
    zone. Reports repeating ``(job_id, attempt, device, interval_start)`` count once.
    ``group_by`` adds one more grouping (``GROUPINGS``) as ``groups``; ``step_s`` is the
    planning step that tells a job moved in time; ``embodied`` the M factors (SCI defaults),
    ``embodied_by_region`` those of the regions that have their own (by region name);
    ``progress`` each job's functional-unit count (SCI's R) by job id; ``idle_gpu_w`` the idle
    draw of one GPU, which credits the GPUs packing left unpowered (``packing``).
    Raises ValueError for a naive datetime or an unknown ``period`` or ``group_by``.
    """
    for name, value in (("now", now), ("start", start), ("end", end)):
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware")
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}; got {period!r}")
    if group_by is not None and group_by not in GROUPINGS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPINGS)}; got {group_by!r}")
    factors = embodied if embodied is not None else EmbodiedFactors()
    reports_by_job = _reports_by_job(energy_reports)
    zones: dict[str, ZoneIntensity] = {}

    def zone_of(region: Region) -> ZoneIntensity:
        zone = region.grid_zone
        if zone not in zones:
            zones[zone] = ZoneIntensity.of(zone, actuals.get(zone), forecasts.get(zone))
        return zones[zone]

    rows: list[JobSavings] = []
    skipped: list[SkippedJob] = []
    for job in jobs:
        reports = reports_by_job.get(job.id)
        if job.state not in COUNTED_STATES or not reports:
            continue
        run_start = _run_start(job, reports)
        if (start is not None and run_start < start) or (end is not None and run_start >= end):
            continue
        try:
            row = _job_savings(job, reports, run_start, regions, zone_of)
            row_factors = factors_for(row.region, factors, embodied_by_region)
            row = _with_conduct(row, job, now=now, step_s=step_s, factors=row_factors)
            rows.append(_with_units(row, (progress or {}).get(job.id)))
        except (RegionNotFound, ForecastUnavailable) as e:
            skipped.append(SkippedJob(job_id=job.id, reason=str(e)))
    rows.sort(key=lambda r: (r.started_at, r.job_id))
    label = _PERIOD_LABELS[period]
    return SavingsReport(
        generated_at=now.astimezone(UTC),
        start=start.astimezone(UTC) if start is not None else None,
        end=end.astimezone(UTC) if end is not None else None,
        period=period,
        jobs=tuple(rows),
        total=group_savings("total", rows),
        by_tenant=_group_by(rows, lambda r: r.tenant),
        by_region=_group_by(rows, lambda r: r.region),
        by_period=_group_by(rows, lambda r: label(r.started_at)),
        skipped=tuple(skipped),
        group_by=group_by,
        groups=_group_by(rows, _GROUP_KEYS[group_by]) if group_by is not None else (),
        packing=None
        if idle_gpu_w is None
        else packing_credit(
            shared_runs(jobs, rows, now), idle_gpu_w=idle_gpu_w, regions=regions, zone_of=zone_of
        ),
    )


_GROUP_KEYS: Mapping[str, Callable[[JobSavings], str]] = {
    "tenant": lambda r: r.tenant,
    "region": lambda r: r.region,
    "kind": lambda r: r.kind,
    "group": lambda r: r.group_id if r.group_id is not None else NO_GROUP,
    **{p: (lambda r, p=p: period_label(r.started_at, p)) for p in PERIODS},  # type: ignore[misc]
}


def _with_conduct(
    row: JobSavings, job: Job, *, now: datetime, step_s: float, factors: EmbodiedFactors
) -> JobSavings:
    """``row`` with the job's kind, group, embodied emissions, deadline and moves."""
    end = row.finished_at if row.finished_at is not None else now
    run_s = max(0.0, (end - row.started_at).total_seconds())
    deadline = effective_deadline(job.spec, job.created_at)
    resources = job.spec.resources
    return replace(
        row,
        kind=job.spec.kind.value,
        group_id=job.spec.group_id,
        run_s=run_s,
        embodied_g=embodied_g(
            gpus=resources.gpus, cpus=resources.cpus, run_s=run_s, factors=factors
        ),
        deadline_missed=(
            deadline is not None and row.finished_at is not None and row.finished_at > deadline
        ),
        moved_in_time=row.delay_s > step_s,
        moved_in_space=row.region != row.home_region,
    )


def _with_units(row: JobSavings, progress: JobProgress | None) -> JobSavings:
    """``row`` with the job's functional units and its figures per R."""
    if progress is None:
        return row
    figures = per_unit(
        operational_g=row.emissions_g,
        embodied_g=row.embodied_g,
        energy_kwh=row.energy_kwh,
        units=progress.units,
        unit=progress.unit,
    )
    return replace(
        row,
        functional_units=progress.units,
        functional_unit=progress.unit,
        sci_g_per_r=figures.sci_g_per_r,
        energy_kwh_per_1k_requests=figures.energy_kwh_per_1k_requests,
        emissions_g_per_1k_requests=figures.emissions_g_per_1k_requests,
    )


def group_savings(key: str, rows: Sequence[JobSavings]) -> GroupSavings:
    """Sum ``rows`` into one group; ``saved_pct`` is recomputed from the sums, not averaged."""
    baseline_g = math.fsum(r.baseline_g for r in rows)
    emissions_g = math.fsum(r.emissions_g for r in rows)
    saved_g = math.fsum(r.saved_g for r in rows)
    energy_kwh = math.fsum(r.energy_kwh for r in rows)
    estimated_kwh = math.fsum(r.estimated_kwh for r in rows)
    n = len(rows)
    embodied = math.fsum(r.embodied_g for r in rows)
    units, unit = shared_units(
        n,
        sum(r.functional_units is not None for r in rows),
        math.fsum(r.functional_units or 0.0 for r in rows),
        {r.functional_unit for r in rows if r.functional_unit is not None},
    )
    figures = per_unit(
        operational_g=emissions_g,
        embodied_g=embodied,
        energy_kwh=energy_kwh,
        units=units,
        unit=unit,
    )
    expected = [
        r.relocation_expected_saving_g for r in rows if r.relocation_expected_saving_g is not None
    ]
    return GroupSavings(
        key=key,
        jobs=n,
        energy_kwh=energy_kwh,
        emissions_g=emissions_g,
        baseline_g=baseline_g,
        saved_g=saved_g,
        saved_pct=_pct(saved_g, baseline_g),
        measured_kwh=energy_kwh - estimated_kwh,
        estimated_kwh=estimated_kwh,
        embodied_g=embodied,
        mean_delay_s=math.fsum(r.delay_s for r in rows) / n if n else None,
        p95_delay_s=p95([r.delay_s for r in rows]),
        deadline_misses=sum(r.deadline_missed for r in rows),
        moved_in_time_share=sum(r.moved_in_time for r in rows) / n if n else None,
        moved_in_space_share=sum(r.moved_in_space for r in rows) / n if n else None,
        functional_units=units,
        functional_unit=unit,
        sci_g_per_r=figures.sci_g_per_r,
        energy_kwh_per_1k_requests=figures.energy_kwh_per_1k_requests,
        emissions_g_per_1k_requests=figures.emissions_g_per_1k_requests,
        relocations=sum(r.relocations for r in rows),
        relocation_expected_saving_g=math.fsum(expected) if expected else None,
    )


def p95(values: Sequence[float]) -> float | None:
    """The 95th percentile by nearest rank (a value of ``values``), None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def period_label(when: datetime, period: str) -> str:
    """The UTC ``day``/``week``/``month`` label of ``when``. Raises KeyError for other periods."""
    return _PERIOD_LABELS[period](when)


def _day(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d")


def _iso_week(when: datetime) -> str:
    iso = when.astimezone(UTC).isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def _month(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m")


# Every label sorts chronologically as a string (zero-padded, ISO year first for weeks).
_PERIOD_LABELS: Mapping[str, Callable[[datetime], str]] = {
    "day": _day,
    "week": _iso_week,
    "month": _month,
}


def _group_by(
    rows: Sequence[JobSavings], key: Callable[[JobSavings], str]
) -> tuple[GroupSavings, ...]:
    groups: dict[str, list[JobSavings]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return tuple(group_savings(k, groups[k]) for k in sorted(groups))


def _reports_by_job(reports: Sequence[EnergyReport]) -> dict[str, list[EnergyReport]]:
    # The store is idempotent on this key already; deduplicating again keeps a report honest
    # when a caller hands over raw, retried submissions.
    seen: set[tuple[str, int, str, datetime]] = set()
    by_job: dict[str, list[EnergyReport]] = defaultdict(list)
    for report in reports:
        key = (report.job_id, report.attempt, report.device, report.interval_start)
        if key not in seen:
            seen.add(key)
            by_job[report.job_id].append(report)
    return by_job


def _run_start(job: Job, reports: Sequence[EnergyReport]) -> datetime:
    first = min(r.interval_start for r in reports)
    return first if job.started_at is None else min(first, job.started_at)


def _run_end(job: Job, reports: Sequence[EnergyReport]) -> datetime | None:
    if job.state not in TERMINAL_STATES:
        return None
    if job.finished_at is not None:
        return job.finished_at
    return max(r.interval_end for r in reports)


def _region(regions: Mapping[str, Region], name: str) -> Region:
    try:
        return regions[name]
    except KeyError:
        raise RegionNotFound(name) from None


def _job_savings(
    job: Job,
    reports: Sequence[EnergyReport],
    run_start: datetime,
    regions: Mapping[str, Region],
    zone_of: Callable[[Region], ZoneIntensity],
) -> JobSavings:
    """Raises RegionNotFound or ForecastUnavailable when the job cannot be priced."""
    ran_in = job.region or (job.plan.region if job.plan is not None else job.spec.home_region)
    region, home = _region(regions, ran_in), _region(regions, job.spec.home_region)
    profile = [
        EnergySlice(r.interval_start.timestamp(), r.interval_end.timestamp(), r.energy_j)
        for r in reports
    ]
    if job.relocations:  # a deployment that moved: each copy's energy where that copy ran
        emissions_g, used = _moved_emissions_g(job, reports, ran_in, regions, zone_of)
    else:
        emissions_g, used = profile_emissions_g(profile, zone_of(region), pue=region.pue)
    delay_s = (run_start - job.created_at).total_seconds()
    baseline_g, used_home = profile_emissions_g(
        profile, zone_of(home), pue=home.pue, shift_s=-delay_s
    )
    saved_g = baseline_g - emissions_g
    source: IntensitySource = worst_source(used, used_home)
    return JobSavings(
        job_id=job.id,
        tenant=job.tenant,
        name=job.spec.name,
        state=job.state,
        region=region.name,
        home_region=home.name,
        submitted_at=job.created_at.astimezone(UTC),
        started_at=run_start.astimezone(UTC),
        finished_at=_utc_or_none(_run_end(job, reports)),
        energy_kwh=math.fsum(r.energy_j for r in reports) / J_PER_KWH,
        emissions_g=emissions_g,
        baseline_g=baseline_g,
        saved_g=saved_g,
        saved_pct=_pct(saved_g, baseline_g),
        delay_s=delay_s,
        energy_estimated=any(r.method is MeterMethod.ESTIMATE for r in reports),
        estimated_kwh=math.fsum(r.energy_j for r in reports if r.method is MeterMethod.ESTIMATE)
        / J_PER_KWH,
        intensity_source=source.value,
        relocations=len(job.relocations),
        relocation_expected_saving_g=math.fsum(r.expected_saving_g for r in job.relocations)
        if job.relocations
        else None,
    )


def _moved_emissions_g(
    job: Job,
    reports: Sequence[EnergyReport],
    ran_in: str,
    regions: Mapping[str, Region],
    zone_of: Callable[[Region], ZoneIntensity],
) -> tuple[float, IntensitySource]:
    """A relocated deployment's grams, each report priced in its attempt's region."""
    by_region: dict[str, list[EnergySlice]] = {}
    for r in reports:
        name = attempt_region(job.relocations, r.attempt, ran_in)
        by_region.setdefault(name, []).append(
            EnergySlice(r.interval_start.timestamp(), r.interval_end.timestamp(), r.energy_j)
        )
    total_g, worst = 0.0, IntensitySource.ACTUAL
    for name, slices in by_region.items():
        region = _region(regions, name)
        grams, used = profile_emissions_g(slices, zone_of(region), pue=region.pue)
        total_g, worst = total_g + grams, worst_source(worst, used)
    return total_g, worst


def _utc_or_none(when: datetime | None) -> datetime | None:
    return when.astimezone(UTC) if when is not None else None


def _pct(saved_g: float, baseline_g: float) -> float | None:
    return 100.0 * saved_g / baseline_g if baseline_g != 0 else None

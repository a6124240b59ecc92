"""GPUs powered with and without packing, and the idle energy packing saved (C = S x R).

Deployments that hold a share of one GPU (``resources.gpus`` below 1) run packed: at every
moment, a region powers the GPUs a first-fit decreasing packing of the shares running there needs
(``scheduler.planning.packing.gpus_needed``, what the planner reserves), where without packing each
would hold a GPU of its own. Over the report's deployments' run intervals (start to finish, to
``now`` while running), per region:

* ``gpu_h_packed`` / ``gpu_h_unpacked``: GPU-hours powered with and without packing;
* ``peak_gpus_packed`` / ``peak_gpus_unpacked``: the most GPUs powered at one time;
* the credit: the GPU-hours saved x the idle draw of a GPU (``idle_gpu_w``, configured:
  ``[power] idle_gpu_w``) = kWh at the meter, priced like a job's energy (x PUE x the region's
  intensity over the same hours, ``scheduler.reports.emissions``).

An unpowered GPU still exists (its embodied carbon is not credited); a packed GPU draws more than
one running a single share, but that energy is measured in the deployments' own reports. Pure.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from scheduler.domain import J_PER_KWH, ForecastUnavailable, Job, Region
from scheduler.domain.savings import RunBounds
from scheduler.planning.packing import gpus_needed, idle_credit
from scheduler.reports.emissions import EnergySlice, ZoneIntensity, profile_emissions_g
from scheduler.reports.formats import fmt_kwh, fmt_mass

if TYPE_CHECKING:
    from scheduler.reports.savings import JobSavings

S_PER_H = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedRun:
    """A deployment holding ``gpu_share`` of one GPU in ``region`` from ``start`` to ``end``."""

    job_id: str
    region: str
    gpu_share: float
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PackingCredit:
    """See the module docstring; ``emissions_g`` is None when a region could not be priced."""

    deployments: int
    gpu_h_packed: float
    gpu_h_unpacked: float
    peak_gpus_packed: int
    peak_gpus_unpacked: int
    idle_gpu_w: float
    idle_power_source: str
    energy_kwh: float
    emissions_g: float | None

    @property
    def gpu_h_saved(self) -> float:
        return self.gpu_h_unpacked - self.gpu_h_packed


def shared_runs(jobs: Sequence[Job], rows: Sequence[JobSavings], now: datetime) -> list[SharedRun]:
    """The report's rows that hold a share of one GPU, as runs (to ``now`` while running)."""
    share = {j.id: j.spec.resources.gpus for j in jobs if 0 < j.spec.resources.gpus < 1}
    return [
        SharedRun(
            job_id=row.job_id,
            region=row.region,
            gpu_share=share[row.job_id],
            start=row.started_at,
            end=row.finished_at or now,
        )
        for row in rows
        if row.job_id in share
    ]


def runs_of_bounds(
    bounds: Sequence[RunBounds],
    now: datetime,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[SharedRun]:
    """The store's run bounds (the report over many jobs) as the per-job report's runs: from
    the earlier of the start and the first energy interval, to the finish (else the last
    interval's end once terminal; ``now`` while running); only runs starting in
    ``[start, end)``, as the per-job report keeps its rows."""
    out = []
    for b in bounds:
        run_start = min(b.started_at, b.first_interval_start)
        if (start is not None and run_start < start) or (end is not None and run_start >= end):
            continue
        finish = b.finished_at or (b.last_interval_end if b.terminal else None)
        out.append(
            SharedRun(
                job_id=b.job_id,
                region=b.region,
                gpu_share=b.gpu_share,
                start=run_start,
                end=finish or now,
            )
        )
    return out


def packing_credit(
    runs: Sequence[SharedRun],
    *,
    idle_gpu_w: float,
    regions: Mapping[str, Region],
    zone_of: Callable[[Region], ZoneIntensity],
) -> PackingCredit | None:
    """The credit for ``runs`` (None without any). Raises ValueError for a bad share or power;
    a region missing from ``regions`` or without intensity data leaves ``emissions_g`` None."""
    if not runs:
        return None
    packed_h = unpacked_h = credit_kwh = 0.0
    grams: float | None = 0.0
    peak_packed = peak_unpacked = 0
    for region_name in sorted({r.region for r in runs}):
        mine = [r for r in runs if r.region == region_name]
        edges = sorted({t for r in mine for t in (r.start.timestamp(), r.end.timestamp())})
        for a_s, b_s in itertools.pairwise(edges):
            shares = [r.gpu_share for r in mine if r.start.timestamp() <= a_s < r.end.timestamp()]
            if not shares:
                continue
            packed, unpacked = gpus_needed(shares), len(shares)
            peak_packed, peak_unpacked = max(peak_packed, packed), max(peak_unpacked, unpacked)
            hours = (b_s - a_s) / S_PER_H
            packed_h += packed * hours
            unpacked_h += unpacked * hours
            saved = idle_credit(unpacked - packed, idle_gpu_w, b_s - a_s)
            credit_kwh += saved.energy_kwh
            if grams is not None and saved.energy_kwh > 0:
                grams = _price(grams, region_name, a_s, b_s, saved.energy_kwh, regions, zone_of)
    return PackingCredit(
        deployments=len({r.job_id for r in runs}),
        gpu_h_packed=packed_h,
        gpu_h_unpacked=unpacked_h,
        peak_gpus_packed=peak_packed,
        peak_gpus_unpacked=peak_unpacked,
        idle_gpu_w=idle_gpu_w,
        idle_power_source="configured",
        energy_kwh=credit_kwh,
        emissions_g=grams,
    )


def _price(
    grams: float,
    region_name: str,
    a_s: float,
    b_s: float,
    energy_kwh: float,
    regions: Mapping[str, Region],
    zone_of: Callable[[Region], ZoneIntensity],
) -> float | None:
    region = regions.get(region_name)
    if region is None:
        return None
    try:
        g, _ = profile_emissions_g(
            [EnergySlice(a_s, b_s, energy_kwh * J_PER_KWH)], zone_of(region), pue=region.pue
        )
    except ForecastUnavailable:  # an unpriced zone leaves the grams unknown, not the hours
        return None
    return grams + g if math.isfinite(g) else None


def describe(credit: PackingCredit) -> str:
    """One sentence for the text and HTML reports."""
    grams = "unpriced" if credit.emissions_g is None else fmt_mass(credit.emissions_g)
    return (
        f"Packing: {credit.deployments} shared-GPU deployments powered "
        f"{credit.gpu_h_packed:.1f} GPU-h (peak {credit.peak_gpus_packed} GPUs) instead of "
        f"{credit.gpu_h_unpacked:.1f} GPU-h (peak {credit.peak_gpus_unpacked}); idle draw saved "
        f"{fmt_kwh(credit.energy_kwh)} kWh at {credit.idle_gpu_w:g} W "
        f"({credit.idle_power_source}), {grams}"
    )

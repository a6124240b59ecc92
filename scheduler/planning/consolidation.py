"""Deployments that ask for a share of one GPU, packed per region before the cycle places jobs.

The planner counts whole GPUs. Shares are settled first, as one pool per region:

* the shares of started deployments (``Occupancy.gpu_shares``, held as the GPUs a first-fit
  decreasing packing of them powers) stay where they run;
* each new share, largest first (then priority, submission, id), goes to the cheapest of its
  allowed regions (forecast mean over its horizon x PUE; its current region unless another is
  cheaper by more than ``DEPLOYMENT_MARGIN``) where the region's shares, this one added, still
  pack onto the GPUs that started whole-GPU jobs leave free over the horizon
  (``packing.gpus_needed``); a share that fits nowhere gets no plan this cycle and a note;
* each region's pool becomes one occupancy of ``gpus_needed`` whole GPUs, and each placed share
  a zero-GPU deployment pinned to its region, so the rest of the cycle (and the admission
  ledger, which reads the same occupancy) sees whole GPUs only and never packs over capacity.

Idempotent: a consolidated snapshot has no shares left to place. Pure: no clock, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np

from scheduler.domain import Forecast
from scheduler.planning.grid import PlanningGrid, resample
from scheduler.planning.packing import gpus_needed
from scheduler.planning.policies import DEPLOYMENT_MARGIN
from scheduler.planning.snapshot import Occupancy, PlanningJob, RegionState, Snapshot


def is_share(gpus: float) -> bool:
    """Whether a GPU count is a share of one GPU (0 < gpus < 1) rather than whole GPUs."""
    return 0 < gpus < 1


def consolidate(snapshot: Snapshot) -> tuple[Snapshot, dict[str, str]]:
    """The snapshot with its shares settled (see the module docstring), and a note for each
    deployment that fits nowhere (it is left out of the returned snapshot's jobs)."""
    new = [j for j in snapshot.jobs if j.gpu_share > 0]
    pools = [o for o in snapshot.occupancy if o.gpu_shares]
    if not new and not pools:
        return snapshot, {}
    horizon_s = max([j.duration_s for j in new] + [_span_s(o, snapshot.now) for o in pools])
    end = snapshot.now + timedelta(seconds=horizon_s)
    whole = [o for o in snapshot.occupancy if not o.gpu_shares]
    room = {r.name: r.gpus - _peak_held(whole, r.name, snapshot.now, end) for r in snapshot.regions}
    shares: dict[str, list[float]] = {r.name: [] for r in snapshot.regions}
    for pool in pools:
        shares.setdefault(pool.region, []).extend(pool.gpu_shares)
    costs = _region_costs(snapshot, end)
    chosen: dict[str, str] = {}
    notes: dict[str, str] = {}
    for job in sorted(new, key=lambda j: (-j.gpu_share, -j.priority, j.submitted_at, j.id)):
        for region in _ranked(job, snapshot.regions, costs):
            if gpus_needed([*shares[region], job.gpu_share]) <= room.get(region, 0):
                shares[region].append(job.gpu_share)
                chosen[job.id] = region
                break
        else:
            notes[job.id] = (
                f"no allowed region has room for a {job.gpu_share:g} GPU share: waiting for "
                "GPUs to free up"
            )
    jobs = tuple(
        _pinned(j, chosen[j.id]) if j.gpu_share > 0 else j
        for j in snapshot.jobs
        if j.gpu_share <= 0 or j.id in chosen
    )
    pooled = tuple(
        Occupancy(
            region=region,
            gpus=gpus_needed(held),
            start=snapshot.now,
            end=end,
            gpu_shares=tuple(held),
        )
        for region, held in sorted(shares.items())
        if held
    )
    return dataclasses.replace(snapshot, jobs=jobs, occupancy=(*whole, *pooled)), notes


def _pinned(job: PlanningJob, region: str) -> PlanningJob:
    """A placed share as the rest of the cycle sees it: no GPUs of its own (its pool holds them),
    one allowed region."""
    return dataclasses.replace(job, gpus=0, gpu_share=0.0, allowed_regions=(region,))


def _span_s(held: Occupancy, now: datetime) -> float:
    return max((held.end - now).total_seconds(), 0.0)


def _peak_held(held: Sequence[Occupancy], region: str, start: datetime, end: datetime) -> int:
    """The most GPUs ``held`` occupies in ``region`` at any time in ``[start, end)``."""
    edges: list[tuple[datetime, int]] = []
    for o in held:
        if o.region == region and o.gpus > 0 and o.end > start and o.start < end:
            edges += [(max(o.start, start), o.gpus), (o.end, -o.gpus)]
    peak = level = 0
    for _, delta in sorted(edges, key=lambda e: (e[0], e[1])):  # ends before starts at a tie
        level += delta
        peak = max(peak, level)
    return peak


def _region_costs(snapshot: Snapshot, end: datetime) -> dict[str, float]:
    """Mean forecast intensity over ``[now, end)`` x PUE per priced region."""
    grid = PlanningGrid.covering(snapshot.now, snapshot.step_s, end)
    costs: dict[str, float] = {}
    for region in snapshot.regions:
        series: Forecast | None = snapshot.forecasts.get(region.name)
        if series is None:
            continue
        values = resample(series, grid)
        if np.isfinite(values).any():
            costs[region.name] = float(np.nanmean(values)) * region.pue
    return costs


def _ranked(
    job: PlanningJob, regions: Sequence[RegionState], costs: Mapping[str, float]
) -> list[str]:
    """The job's allowed regions, cheapest first (unpriced ones last, home first among them);
    its current region first while no other is cheaper by more than the margin."""
    names = {r.name for r in regions}
    allowed = [n for n in job.allowed_regions if n in names] or [r.name for r in regions]
    order = sorted(
        allowed, key=lambda n: (costs.get(n, math.inf), n != job.home_region, allowed.index(n))
    )
    current = job.current_plan.region if job.current_plan is not None else None
    if current in allowed and current != order[0]:
        best, mine = costs.get(order[0], math.inf), costs.get(current, math.inf)
        if math.isfinite(mine) and mine <= best * (1 + DEPLOYMENT_MARGIN):
            order.remove(current)
            order.insert(0, current)
    return order

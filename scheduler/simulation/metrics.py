"""Accounting on actuals: emissions, waits, deadline misses and GPU use of a simulated run.

Emissions of a run interval = power (W) x region PUE x ∫ actual intensity dt / 3.6e6, exact on the
grid's piecewise-constant actuals. Wait = first start - arrival. A deadline is missed when the
last run ends after it (or the job never finished). GPU utilisation = GPU-seconds used / GPU-
seconds available in capacity-limited regions between the first arrival and the last deadline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from scheduler.simulation.engine import JobRecord, PolicyRun
from scheduler.simulation.grid import FloatArray, epoch_s
from scheduler.simulation.scenario import Scenario

_MISS_TOLERANCE_S = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyMetrics:
    """One row of the results table. Relative figures are None when undefined.

    ``saving_vs_now_pct`` = (now - this) / now x 100. ``share_of_optimum_pct`` = (now - this) /
    (now - optimum) x 100, the share of the best possible saving this policy got.
    ``peak_gpus`` is the most GPUs in use at once per region (a check on capacity);
    ``capacity_holds`` counts planned starts the engine refused because they would overcommit.
    """

    label: str
    jobs: int
    emissions_g: float
    mean_wait_s: float
    p95_wait_s: float
    deadline_misses: int
    unfinished: int
    gpu_utilisation: float | None
    peak_gpus: Mapping[str, int]
    late_reported: int
    cycles: int
    capacity_holds: int = 0
    saving_vs_now_pct: float | None = None
    share_of_optimum_pct: float | None = None


def job_emissions_g(scenario: Scenario, records: Sequence[JobRecord]) -> FloatArray:
    """Grams per job on actual intensity, in the order of ``records``."""
    totals = np.zeros(len(records))
    for region in scenario.regions:
        rows, starts, ends, power = [], [], [], []
        for i, record in enumerate(records):
            for run in record.runs:
                if run.region == region.name:
                    rows.append(i)
                    starts.append(run.start_s)
                    ends.append(run.end_s)
                    power.append(record.job.power_w * region.pue)
        if rows:
            grams = scenario.grid.emissions_g(
                region.name, np.array(starts), np.array(ends), np.array(power)
            )
            np.add.at(totals, np.array(rows), grams)
    return totals


def measure(scenario: Scenario, run: PolicyRun) -> PolicyMetrics:
    """Everything but the relative figures (see ``compare``)."""
    records = run.records
    waits = np.array([r.runs[0].start_s - epoch_s(r.job.arrival) for r in records if r.runs])
    missed = sum(
        1
        for r in records
        if not r.finished or r.runs[-1].end_s > epoch_s(r.job.deadline) + _MISS_TOLERANCE_S
    )
    return PolicyMetrics(
        label=run.label,
        jobs=len(records),
        emissions_g=float(job_emissions_g(scenario, records).sum()),
        mean_wait_s=float(waits.mean()) if len(waits) else 0.0,
        p95_wait_s=float(np.percentile(waits, 95)) if len(waits) else 0.0,
        deadline_misses=missed,
        unfinished=sum(1 for r in records if not r.finished),
        gpu_utilisation=_utilisation(scenario, records),
        peak_gpus=peak_gpus(records),
        late_reported=sum(1 for r in records if r.late),
        cycles=run.cycles,
        capacity_holds=sum(r.capacity_holds for r in records),
    )


def compare(
    rows: Sequence[PolicyMetrics],
    *,
    baseline_label: str = "now",
    optimum_label: str = "optimum",
) -> list[PolicyMetrics]:
    """Fill the savings relative to the baseline and the share of the optimum's saving."""
    by_label: Mapping[str, PolicyMetrics] = {r.label: r for r in rows}
    baseline = by_label.get(baseline_label)
    optimum = by_label.get(optimum_label)
    result = []
    for row in rows:
        saving = share = None
        if baseline is not None and baseline.emissions_g > 0:
            saving = (baseline.emissions_g - row.emissions_g) / baseline.emissions_g * 100.0
            if optimum is not None and baseline.emissions_g - optimum.emissions_g > 1e-9:
                share = (
                    (baseline.emissions_g - row.emissions_g)
                    / (baseline.emissions_g - optimum.emissions_g)
                    * 100.0
                )
        result.append(replace(row, saving_vs_now_pct=saving, share_of_optimum_pct=share))
    return result


def peak_gpus(records: Sequence[JobRecord]) -> dict[str, int]:
    """Most GPUs held at once per region (a sweep over run starts and ends)."""
    events: dict[str, list[tuple[float, int]]] = {}
    for record in records:
        for run in record.runs:
            events.setdefault(run.region, []).extend(
                [(run.start_s, record.job.gpus), (run.end_s, -record.job.gpus)]
            )
    peaks = {}
    for region, points in events.items():
        # Ends sort before starts at the same instant: a GPU freed at t may be taken at t.
        points.sort(key=lambda p: (p[0], p[1]))
        peaks[region] = int(np.max(np.cumsum([g for _, g in points]), initial=0))
    return peaks


def _utilisation(scenario: Scenario, records: Sequence[JobRecord]) -> float | None:
    limited = {r.name: r.gpus for r in scenario.regions if r.gpus is not None}
    if not limited or not records:
        return None
    span_s = max(epoch_s(r.job.deadline) for r in records) - min(
        epoch_s(r.job.arrival) for r in records
    )
    available = sum(limited.values()) * span_s
    used = sum(
        record.job.gpus * (run.end_s - run.start_s)
        for record in records
        for run in record.runs
        if run.region in limited
    )
    return used / available if available > 0 else None

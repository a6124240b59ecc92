"""Deployments over one simulated week: staying put vs relocating vs relocating + packing, and
the offline optimum.

Regions: DE, ES and US-CAL-CISO on the traces shipped with Greenlight (Electricity Maps 2023,
hourly, life-cycle), 12 GPUs each, PUEs from the default config. Deployments: 20, seeded; each
asks for 0.25, 0.5 or 1 GPU, draws 150-350 W when alone on its GPU (60 W of it the GPU's idle
draw), with request load following its clients' day (+-35 %) and hourly noise; a quarter of them
may only run in Europe. Forecasts are issued every hour for 24 h ahead with an error that grows
with the lead (about 4 % MAPE an hour ahead, 12 % a day ahead) and is shared by successive
issues (a weather surprise shows in every forecast of that hour), so forecasts are revised
smoothly, as real ones are.

Strategies, all accounted hour by hour on actual intensity:

* stay put: placed once at the start in the allowed region with the lowest forecast mean over
  24 h (PUE included) that has room; one whole GPU per deployment (today's behaviour);
* relocating: ``scheduler.planning.relocation.plan_relocations`` every hour with the default
  policy, on the deployment's measured power (mean of its last 6 h) and the hour's forecasts; a
  move costs the old copy's draw over the 10 min blue/green overlap;
* + packing: fractional deployments share GPUs (``scheduler.planning.packing``), within
  capacity; a GPU powered draws its idle 60 W once, whatever shares it holds;
* optimum: a MIP over (deployment, region, hour) on actuals with the same overlap cost per move
  and the same capacity (whole GPUs; with packing, GPUs powered >= the shares they hold, which
  first-fit decreasing meets exactly for shares of 1/4, 1/2 and 1), solved by HiGHS
  (``scipy.optimize.milp``), as the training planner's exact optimum is. It knows the week in
  advance and has no minimum stay: it bounds what any strategy could save.

Run: ``.venv/bin/python bench/deployments.py [--start 2023-05-01] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import collections
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from scheduler.domain import Forecast, IntensityPoint, SeriesKind
from scheduler.forecasts.trace_files import load_carbon_trace
from scheduler.planning.packing import gpus_needed, whole_gpus
from scheduler.planning.relocation import (
    RegionOutlook,
    RelocationPolicy,
    RunningDeployment,
    plan_relocations,
    region_outlooks,
)
from scheduler.simulation.grid import FloatArray, build_grid

TRACES = Path(__file__).resolve().parents[1] / "scheduler" / "forecasts" / "traces"
REGIONS = (("eu-central", "DE", 1.15), ("eu-south", "ES", 1.2), ("us-west", "US-CAL-CISO", 1.1))
EUROPE = ("eu-central", "eu-south")
GPUS_PER_REGION = 12
DEPLOYMENTS = 20
HOURS = 7 * 24
HORIZON_H = 24
IDLE_W = 60.0
SHARES = (0.25, 0.5, 1.0)
SHARE_P = (0.4, 0.4, 0.2)
POWER_TRAILING_H = 6
MIP_TIME_LIMIT_S = 30.0
MIP_REL_GAP = 1e-3  # 0.1 % of the emissions: the packed MIP closes the last 0.1 % slowly
POLICY = RelocationPolicy()
# Where a deployment starts: the lowest forecast mean over 24 h (today's placement).
PLACEMENT = RelocationPolicy(horizon_s=HORIZON_H * 3600.0)


@dataclass(frozen=True, slots=True)
class Fleet:
    """The deployments: share, allowed regions, and hourly draw alone on a GPU (W, idle
    included) over the week."""

    shares: FloatArray
    allowed: tuple[tuple[str, ...], ...]
    solo_w: FloatArray  # (deployments, hours)

    @property
    def dynamic_w(self) -> FloatArray:
        dyn: FloatArray = self.solo_w - IDLE_W
        return dyn

    def power_w(self, packed: bool) -> FloatArray:
        """Each deployment's draw as metered: alone on its GPU, or its work plus its share of
        a shared GPU's idle draw."""
        if not packed:
            return self.solo_w
        out: FloatArray = self.dynamic_w + self.shares[:, None] * IDLE_W
        return out


@dataclass(slots=True)
class Outcome:
    label: str
    emissions_g: float
    moves: int
    gpu_hours: float
    note: str = ""


def make_fleet(rng: np.random.Generator) -> Fleet:
    shares = rng.choice(SHARES, size=DEPLOYMENTS, p=SHARE_P)
    solo_mean = rng.uniform(150.0, 350.0, size=DEPLOYMENTS)
    peak_h = rng.choice([13.0, 20.0], size=DEPLOYMENTS)  # European or American clients (UTC)
    hours = np.arange(HOURS)
    load = 1 + 0.35 * np.cos(2 * np.pi * (hours[None, :] - peak_h[:, None]) / 24)
    load = np.clip(load + rng.normal(0.0, 0.08, size=load.shape), 0.2, None)
    solo_w = IDLE_W + (solo_mean - IDLE_W)[:, None] * load
    names = tuple(r[0] for r in REGIONS)
    allowed = tuple(EUROPE if rng.random() < 0.25 else names for _ in range(DEPLOYMENTS))
    return Fleet(shares=shares, allowed=allowed, solo_w=solo_w)


@functools.cache
def traces() -> dict[str, Forecast]:
    return {
        name: load_carbon_trace(TRACES / f"{zone}_2023_hourly.csv") for name, zone, _ in REGIONS
    }


def load_actuals(start: datetime) -> dict[str, FloatArray]:
    series = traces()
    end = start + timedelta(hours=HOURS + HORIZON_H + 1)
    grid = build_grid(series, start=start, end=end, step_s=3600)
    return dict(grid.actuals)


def make_forecasts(
    actual: Mapping[str, FloatArray], rng: np.random.Generator
) -> dict[str, FloatArray]:
    """``forecast[region][issue, lead]`` for valid hour ``issue + lead``, lead 0..24: relative
    error ``s(lead) x z(valid) + noise``, ``z`` an AR(1) weather surprise (0.9 per hour, unit
    sd) shared by every issue, ``s`` growing from 0.04 to 0.15 over the day."""
    leads = np.arange(HORIZON_H + 1)
    scale = 0.04 + 0.11 * leads / HORIZON_H
    out = {}
    for name, values in actual.items():
        n = len(values)
        z = np.zeros(n)
        z[0] = rng.normal()
        for v in range(1, n):
            z[v] = 0.9 * z[v - 1] + np.sqrt(1 - 0.81) * rng.normal()
        valid = np.arange(HOURS)[:, None] + leads[None, :]
        error = scale[None, :] * z[valid] + rng.normal(0.0, 0.02, size=valid.shape)
        out[name] = np.maximum(values[valid] * (1 + error), 1.0)
    return out


def forecast_series(values: FloatArray, issued: datetime) -> Forecast:
    points = tuple(
        IntensityPoint(valid_at=issued + timedelta(hours=k), g_per_kwh=float(v))
        for k, v in enumerate(values)
    )
    return Forecast(
        zone="bench",
        provider="bench",
        kind=SeriesKind.FORECAST,
        issued_at=issued,
        resolution_s=3600,
        points=points,
    )


def outlooks_at(
    forecasts: Mapping[str, FloatArray], start: datetime, hour: int, policy: RelocationPolicy
) -> dict[str, RegionOutlook]:
    now = start + timedelta(hours=hour)
    series = {name: forecast_series(f[hour, :HORIZON_H], now) for name, f in forecasts.items()}
    return region_outlooks(series, {name: pue for name, _, pue in REGIONS}, now, policy)


def fits(shares: Sequence[float], packed: bool) -> bool:
    needed = gpus_needed(shares) if packed else sum(whole_gpus(s) for s in shares)
    return needed <= GPUS_PER_REGION


def initial_placement(fleet: Fleet, looks: Mapping[str, RegionOutlook], packed: bool) -> list[str]:
    """Deployments with fewer allowed regions first, then the largest expected draw, each in
    its allowed region with the lowest forecast mean x PUE over 24 h that still has room."""
    expected = fleet.power_w(packed).mean(axis=1)
    held: dict[str, list[float]] = {name: [] for name, _, _ in REGIONS}
    where = [""] * DEPLOYMENTS
    for i in sorted(range(DEPLOYMENTS), key=lambda i: (len(fleet.allowed[i]), -expected[i])):
        ranked = sorted(fleet.allowed[i], key=lambda r: looks[r].pue * looks[r].mean_g_per_kwh)
        region = next(r for r in ranked if fits([*held[r], float(fleet.shares[i])], packed))
        held[region].append(float(fleet.shares[i]))
        where[i] = region
    return where


def account(
    fleet: Fleet,
    actual: Mapping[str, FloatArray],
    regions: Sequence[Sequence[str]],
    packed: bool,
) -> tuple[float, int, float]:
    """Grams on actuals, moves and GPU-hours of an hourly assignment ``regions[i][t]``."""
    pue = {name: p for name, _, p in REGIONS}
    draw = fleet.dynamic_w if packed else fleet.solo_w
    metered = fleet.power_w(packed)
    grams, moves, gpu_hours = 0.0, 0, 0.0
    for t in range(HOURS):
        held: dict[str, list[float]] = {}
        for i in range(DEPLOYMENTS):
            r = regions[i][t]
            held.setdefault(r, []).append(float(fleet.shares[i]))
            grams += draw[i, t] / 1000 * pue[r] * actual[r][t]
            if t and regions[i][t - 1] != r:
                old = regions[i][t - 1]
                moves += 1
                grams += metered[i, t] / 1000 * pue[old] * actual[old][t] * POLICY.overlap_s / 3600
        for r, shares in held.items():
            n = gpus_needed(shares) if packed else sum(whole_gpus(s) for s in shares)
            assert n <= GPUS_PER_REGION, f"{r} over capacity at hour {t}"
            gpu_hours += n
            if packed:
                grams += n * IDLE_W / 1000 * pue[r] * actual[r][t]
    return grams, moves, gpu_hours


@dataclass(frozen=True, slots=True)
class Week:
    """One simulated week: the fleet, actual intensity and hourly forecasts per region."""

    fleet: Fleet
    actual: Mapping[str, FloatArray]
    forecasts: Mapping[str, FloatArray]
    start: datetime


def run_strategy(
    week: Week,
    *,
    relocate: bool,
    packed: bool,
    label: str,
    policy: RelocationPolicy = POLICY,
) -> Outcome:
    fleet, actual, forecasts, start = week.fleet, week.actual, week.forecasts, week.start
    where = initial_placement(fleet, outlooks_at(forecasts, start, 0, PLACEMENT), packed)
    since = [start] * DEPLOYMENTS
    metered = fleet.power_w(packed)
    history = [[r] for r in where]
    capacity = {name: GPUS_PER_REGION for name, _, _ in REGIONS}
    for t in range(1, HOURS):
        if relocate:
            now = start + timedelta(hours=t)
            running = [
                RunningDeployment(
                    job_id=str(i),
                    region=where[i],
                    since=since[i],
                    power_w=float(metered[i, max(0, t - POWER_TRAILING_H) : t].mean()),
                    allowed_regions=fleet.allowed[i],
                    gpu_share=float(fleet.shares[i]),
                )
                for i in range(DEPLOYMENTS)
            ]
            looks = outlooks_at(forecasts, start, t, policy)
            for job_id, decision in plan_relocations(
                running, looks, now, policy, capacity, packed=packed
            ).items():
                if decision.target_region is not None:
                    where[int(job_id)] = decision.target_region
                    since[int(job_id)] = now
        for i in range(DEPLOYMENTS):
            history[i].append(where[i])
    grams, moves, gpu_hours = account(fleet, actual, history, packed)
    return Outcome(label, grams, moves, gpu_hours)


class Rows:
    """A sparse constraint matrix built from blocks of ``(row, column, value)``."""

    def __init__(self, n_rows: int, n_vars: int) -> None:
        self.shape = (n_rows, n_vars)
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, row: np.ndarray, col: np.ndarray, value: float | np.ndarray) -> None:
        row, col = np.broadcast_arrays(row, col)
        self.parts.append(
            (row.ravel(), col.ravel(), np.broadcast_to(value, col.shape).ravel().astype(float))
        )

    def matrix(self) -> sparse.csr_matrix:
        row, col, val = (np.concatenate(p) for p in zip(*self.parts, strict=True))
        return sparse.csr_matrix((val, (row, col)), shape=self.shape)


def solve_optimum(
    fleet: Fleet, actual: Mapping[str, FloatArray], *, packed: bool, label: str
) -> Outcome:
    """The offline optimum (see the module docstring): ``x[i, r, t]`` deployment ``i`` in region
    ``r`` in hour ``t``, ``z[i, r, t] >= x[i, r, t-1] - x[i, r, t]`` its leaving ``r`` (the old
    copy's overlap there), and with packing ``g[r, t]`` the GPUs powered."""
    names = [name for name, _, _ in REGIONS]
    n, n_r, n_t = DEPLOYMENTS, len(names), HOURS
    pue = np.array([p for _, _, p in REGIONS])
    g_per_wh = np.stack([actual[name][:n_t] for name in names]) * pue[:, None] / 1000
    draw = fleet.dynamic_w if packed else fleet.solo_w
    metered = fleet.power_w(packed)
    nx = n * n_r * n_t
    n_vars = 2 * nx + (n_r * n_t if packed else 0)
    x = np.arange(nx).reshape(n, n_r, n_t)
    z = nx + x
    cell = np.arange(n_r * n_t).reshape(n_r, n_t)
    allowed = np.array([[name in fleet.allowed[i] for name in names] for i in range(n)])
    upper_z = np.ones((n, n_r, n_t))
    upper_z[:, :, 0] = 0.0
    cost = [
        (draw[:, None, :] * g_per_wh[None]).ravel(),
        (metered[:, None, :] * g_per_wh[None] * POLICY.overlap_s / 3600).ravel(),
    ]
    upper = [np.repeat(allowed[:, :, None], n_t, axis=2).astype(float).ravel(), upper_z.ravel()]
    integrality = [np.ones(nx), np.zeros(nx)]
    one = Rows(n * n_t, n_vars)  # one region per deployment and hour
    one.add(np.arange(n * n_t).reshape(n, 1, n_t), x, 1.0)
    leave = Rows(n * n_r * (n_t - 1), n_vars)  # z[t] - x[t-1] + x[t] >= 0
    rows = np.arange(n * n_r * (n_t - 1)).reshape(n, n_r, n_t - 1)
    leave.add(rows, z[:, :, 1:], 1.0)
    leave.add(rows, x[:, :, :-1], -1.0)
    leave.add(rows, x[:, :, 1:], 1.0)
    capacity = Rows(n_r * n_t, n_vars)
    if packed:  # sum_i share_i x[i, r, t] - g[r, t] <= 0, g <= GPUs
        capacity.add(cell[None], x, np.broadcast_to(fleet.shares[:, None, None], x.shape))
        capacity.add(cell, 2 * nx + cell, -1.0)
        cost.append((IDLE_W * g_per_wh).ravel())
        upper.append(np.full(n_r * n_t, float(GPUS_PER_REGION)))
        integrality.append(np.ones(n_r * n_t))
    else:
        capacity.add(cell[None], x, 1.0)
    constraints = [
        LinearConstraint(one.matrix(), 1.0, 1.0),
        LinearConstraint(leave.matrix(), 0.0, np.inf),
        LinearConstraint(capacity.matrix(), -np.inf, 0.0 if packed else float(GPUS_PER_REGION)),
    ]
    started = time.perf_counter()
    result = milp(
        np.concatenate(cost),
        constraints=constraints,
        integrality=np.concatenate(integrality),
        bounds=Bounds(np.zeros(n_vars), np.concatenate(upper)),
        options={"time_limit": MIP_TIME_LIMIT_S, "mip_rel_gap": MIP_REL_GAP, "disp": False},
    )
    if result.x is None:
        raise RuntimeError(f"{label}: HiGHS found no solution ({result.message})")
    chosen = np.asarray(result.x[:nx]).reshape(n, n_r, n_t).argmax(axis=1)
    history = [[names[int(chosen[i, t])] for t in range(n_t)] for i in range(n)]
    grams, moves, gpu_hours = account(fleet, actual, history, packed)
    gap_pct = 100 * float(getattr(result, "mip_gap", float("nan")))
    proven = (
        f"optimal within {gap_pct:.3f} % (HiGHS gap)"
        if result.status == 0
        else f"best found in {MIP_TIME_LIMIT_S:g} s, gap {gap_pct:.3f} %"
    )
    note = f"MIP {time.perf_counter() - started:.1f} s, {proven}"
    return Outcome(label, grams, moves, gpu_hours, note=note)


def mape_pct(
    forecasts: Mapping[str, FloatArray], actual: Mapping[str, FloatArray], lead: int
) -> float:
    errors = [
        np.abs(f[:, lead] / actual[name][lead : lead + HOURS] - 1).mean()
        for name, f in forecasts.items()
    ]
    return 100 * float(np.mean(errors))


def table(rows: Sequence[Outcome], baseline: Outcome, optimum: Mapping[str, Outcome]) -> str:
    header = (
        "strategy",
        "emissions kg",
        "vs stay put %",
        "moves/deployment",
        "GPUs powered",
        "of optimum's saving %",
    )
    lines = []
    for row in rows:
        best = optimum["packed" if "packing" in row.label else "whole"]
        possible = baseline.emissions_g - best.emissions_g
        saved = baseline.emissions_g - row.emissions_g
        lines.append(
            (
                row.label,
                f"{row.emissions_g / 1000:.1f}",
                f"{100 * saved / baseline.emissions_g:.2f}",
                f"{row.moves / DEPLOYMENTS:.2f}",
                f"{row.gpu_hours / HOURS:.1f}",
                f"{100 * saved / possible:.1f}" if possible > 0 else "-",
            )
        )
    widths = [max(len(str(x[k])) for x in [header, *lines]) for k in range(len(header))]
    out = [
        "  ".join(
            h.ljust(w) if k == 0 else h.rjust(w)
            for k, (h, w) in enumerate(zip(header, widths, strict=True))
        ),
        "  ".join("-" * w for w in widths),
    ]
    for line in lines:
        out.append(
            "  ".join(
                c.ljust(w) if k == 0 else c.rjust(w)
                for k, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    return "\n".join(out)


# Sensitivity: every sixth week of 2023 from the first Monday (not chosen by their results).
SENSITIVITY_WEEKS = tuple(
    datetime(2023, 1, 2, tzinfo=UTC) + timedelta(weeks=6 * k) for k in range(9)
)
SENSITIVITY_POLICIES = (  # horizon h, minimum stay h
    (24.0, 6.0),
    (12.0, 4.0),
    (POLICY.horizon_s / 3600, POLICY.min_stay_s / 3600),
    (4.0, 2.0),
)


def sensitivity(seed: int) -> str:
    """Relocation's own saving (against staying put, with and without packing alike) per policy
    over ``SENSITIVITY_WEEKS``: mean and worst week, moves per deployment and week; and the
    whole-GPU optimum's mean saving for scale."""
    fleet = make_fleet(np.random.default_rng(seed))
    results: dict[tuple[float, float], list[list[float]]] = {p: [] for p in SENSITIVITY_POLICIES}
    optimum_pct = []
    for k, start in enumerate(SENSITIVITY_WEEKS):
        actual = load_actuals(start)
        forecasts = make_forecasts(actual, np.random.default_rng([seed, k]))
        common = Week(fleet, actual, forecasts, start)
        stay = {
            packed: run_strategy(common, relocate=False, packed=packed, label="").emissions_g
            for packed in (False, True)
        }
        best = solve_optimum(fleet, actual, packed=False, label="optimum").emissions_g
        optimum_pct.append(100 * (stay[False] - best) / stay[False])
        for horizon_h, stay_h in SENSITIVITY_POLICIES:
            policy = RelocationPolicy(horizon_s=horizon_h * 3600, min_stay_s=stay_h * 3600)
            row: list[float] = []
            for packed in (False, True):
                run = run_strategy(common, relocate=True, packed=packed, label="", policy=policy)
                row += [
                    100 * (stay[packed] - run.emissions_g) / stay[packed],
                    run.moves / DEPLOYMENTS,
                ]
            results[(horizon_h, stay_h)].append(row)
    lines = [
        f"Relocation's own saving over staying put, {len(SENSITIVITY_WEEKS)} weeks (every sixth "
        f"of 2023): % mean / worst week, and moves per deployment and week; the whole-GPU "
        f"optimum saves {np.mean(optimum_pct):.2f} % on average",
        "horizon h  min stay h  whole GPUs %   moves  with packing %  moves",
    ]
    for (horizon_h, stay_h), rows in results.items():
        r = np.array(rows)
        lines.append(
            f"{horizon_h:9g}  {stay_h:10g}  {r[:, 0].mean():5.2f} / {r[:, 0].min():5.2f}  "
            f"{r[:, 1].mean():5.1f}  {r[:, 2].mean():6.2f} / {r[:, 2].min():5.2f}  "
            f"{r[:, 3].mean():5.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--start", default="2023-05-01", help="first day (UTC) of the week")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sensitivity", action="store_true", help="the main table only")
    args = parser.parse_args()
    started = time.perf_counter()
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    rng = np.random.default_rng(args.seed)
    fleet = make_fleet(rng)
    actual = load_actuals(start)
    forecasts = make_forecasts(actual, rng)
    shares = sorted(collections.Counter(fleet.shares.tolist()).items())
    europe = sum(a == EUROPE for a in fleet.allowed)
    print(
        f"{DEPLOYMENTS} deployments (GPU shares: {', '.join(f'{c} x {s:g}' for s, c in shares)}; "
        f"{europe} Europe-only), 3 regions x {GPUS_PER_REGION} GPUs, the week from "
        f"{start:%Y-%m-%d}, hourly cycles; forecast MAPE {mape_pct(forecasts, actual, 1):.1f} % "
        f"at 1 h, {mape_pct(forecasts, actual, HORIZON_H):.1f} % at 24 h"
    )
    print(
        f"policy: horizon {POLICY.horizon_s / 3600:g} h, threshold {POLICY.threshold_g:g} g and "
        f"{POLICY.threshold_pct:g} %, hysteresis {POLICY.hysteresis:g} (bar {POLICY.bar_g:g} g and "
        f"{POLICY.bar_pct:g} %), minimum stay {POLICY.min_stay_s / 3600:g} h, overlap "
        f"{POLICY.overlap_s / 60:g} min; idle {IDLE_W:g} W per powered GPU\n"
    )
    common = Week(fleet, actual, forecasts, start)
    rows = [
        run_strategy(common, relocate=False, packed=False, label="stay put"),
        run_strategy(common, relocate=False, packed=True, label="stay put + packing"),
        run_strategy(common, relocate=True, packed=False, label="relocating"),
        run_strategy(common, relocate=True, packed=True, label="relocating + packing"),
    ]
    optimum = {
        "whole": solve_optimum(fleet, actual, packed=False, label="optimum"),
        "packed": solve_optimum(fleet, actual, packed=True, label="optimum + packing"),
    }
    rows.extend(optimum.values())
    print(table(rows, rows[0], optimum))
    for row in optimum.values():
        print(f"{row.label}: {row.note}")
    if not args.no_sensitivity:
        print()
        print(sensitivity(args.seed))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

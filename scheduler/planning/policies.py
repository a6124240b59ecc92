"""Per-job policies: which regions and starts a job may take, and how each is scored.

Every policy reduces to a score per ``(region, start)`` candidate, lower is better; the placer
then takes the best candidate that still has free GPUs (``scheduler.planning.placement``), so
capacity and deadlines bind every policy alike. Candidates are the job's earliest start and
every later slot boundary up to its latest start that meets the deadline.

* ``now`` -- the baseline: home region, the earliest start with free GPUs.
* ``lowest-window`` -- home region only (time shifting, as the Carbon Aware SDK's and CATS'
  single-location use): the start with the lowest forecast emissions (rolling-window minimum).
* ``carbon-time`` -- GAIA's Carbon-Time, home region only: the start maximising carbon saved
  against starting now per unit of completion time, ``(C(now) - C(s)) / (wait(s) + duration)``;
  run-now scores 0, so a start is taken only when it saves something.
* ``wait-awhile`` -- Let's Wait Awhile, home region only: rolling-window minimum; interruptible
  jobs are split into their lowest-carbon slots (``scheduler.planning.split``).
* ``greenlight`` -- every allowed region, placed jointly with capacity
  (``scheduler.planning.improve``) on pessimistic prices: intensity plus the measured forecast
  error at each slot's lead, so a later window wins over an earlier one only when its advantage
  exceeds the growth of the forecast error between them; and every hour a job waits past its
  earliest start counts as a little carbon (its time value, ``WAIT_KWH_PER_H``).
* ``oracle`` -- like ``greenlight`` but on actuals, without an error margin (simulation only).

Deployments start at their earliest start in the region with the lowest mean over their
horizon (home only under ``now``). A current plan's candidate gets a bonus (``STABILITY_MARGIN``,
``DEPLOYMENT_MARGIN`` for deployments) so re-planning moves a job only for a real gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scheduler.domain import Policy
from scheduler.planning.grid import FloatArray, IntArray, PlanningGrid
from scheduler.planning.prices import PriceBook
from scheduler.planning.table import JobTable
from scheduler.planning.window import candidate_starts

# Greenlight's time value: one hour of one job's wait is worth the emissions of this many kWh
# at the planning book's mean intensity (``PriceBook.mean_g_per_kwh``; about 1.9 g on
# ``bench/regions.py``'s grids, 0.3 g on France's). It is the Lagrange multiplier of a bound
# on the mean wait, in which every job's hour counts alike whatever its size: a small job
# defers only for a saving worth more than its wait, a large one almost always does. Scaled by
# the grid's intensity so that it means the same on a clean grid as on a dirty one. Measured on
# ``bench/regions.py`` (150 Philly jobs, 3 regions, online): the mean wait falls from 7.7 h to
# 4.7 h (below the single-region policies' 5.2-5.5 h) for 0.3 points of the optimum's saving;
# twice the value gives 4.2 h but costs a point of the optimum's saving on ``plan_speed.py``'s
# snapshot with a day of slack. ``bench/anchors.py`` (Let's Wait Awhile) keeps its savings.
WAIT_KWH_PER_H: dict[Policy, float] = {Policy.GREENLIGHT: 0.005}
# Share of a job's score by which a new plan must beat its current one.
STABILITY_MARGIN = 0.02
# Share of a deployment's horizon emissions a move to another region must save.
DEPLOYMENT_MARGIN = 0.05

HOME_ONLY = frozenset({Policy.NOW, Policy.LOWEST_WINDOW, Policy.CARBON_TIME, Policy.WAIT_AWHILE})
JOINT = frozenset({Policy.GREENLIGHT, Policy.ORACLE})
SPLITTING = frozenset({Policy.WAIT_AWHILE, Policy.GREENLIGHT, Policy.ORACLE})
# Policies scoring by emissions alone: their best start sits next to a price break.
REDUCED_STARTS = frozenset(
    {Policy.LOWEST_WINDOW, Policy.WAIT_AWHILE, Policy.GREENLIGHT, Policy.ORACLE}
)


@dataclass(frozen=True, slots=True)
class Candidates:
    """A job's candidates: ``score[i, w]`` for region ``rows[i]`` starting at ``starts_x[w]``
    (ascending; ``inf`` excludes). ``unpriced`` marks a job falling back to run-now at home."""

    rows: IntArray
    starts_x: FloatArray
    score: FloatArray
    unpriced: bool = False


@dataclass(frozen=True, slots=True)
class Books:
    """The prices each policy plans on. ``actual`` is None outside simulation."""

    forecast: PriceBook
    robust: PriceBook
    actual: PriceBook | None

    def planning(self, policy: Policy) -> PriceBook:
        """What ``policy`` scores on (robust prices for ``greenlight``)."""
        if policy is Policy.ORACLE and self.actual is not None:
            return self.actual
        return self.robust if policy is Policy.GREENLIGHT else self.forecast

    def reporting(self, policy: Policy) -> PriceBook:
        """What a plan's emissions are reported on: actuals for the oracle, else the forecast."""
        if policy is Policy.ORACLE and self.actual is not None:
            return self.actual
        return self.forecast


@dataclass(frozen=True, slots=True)
class CurrentPlans:
    """Row and start (slots) of each job's current plan (-1 / NaN when none applies)."""

    row: IntArray
    start_x: FloatArray


def current_plans(table: JobTable, grid: PlanningGrid) -> CurrentPlans:
    index = {name: i for i, name in enumerate(table.regions)}
    rows = np.full(len(table), -1, dtype=np.int64)
    starts = np.full(len(table), np.nan)
    for j, job in enumerate(table.jobs):
        plan = job.current_plan
        if plan is None or plan.region not in index:
            continue
        rows[j] = index[plan.region]
        starts[j] = max(grid.to_x(plan.start), float(table.x_e[j]))
    return CurrentPlans(row=rows, start_x=starts)


def candidates(
    j: int,
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    *,
    every_start: bool = False,
) -> Candidates:
    """The scored candidates of job ``j`` under its policy.

    Cost-scored policies consider only the starts next to price breaks (``break_starts``),
    where the cheapest start lies; ``every_start`` lifts that (to look for any free start).
    """
    policy = table.policy[j]
    book = books.planning(policy)
    rows = _rows(j, table, book, policy)
    if rows.size == 0:
        return _run_now_home(j, table)
    starts = _starts(
        j, table, book, rows, float(current.start_x[j]), every_start or policy not in REDUCED_STARTS
    )
    if policy is Policy.NOW and not table.deployment[j]:
        score = np.broadcast_to(starts, (len(rows), len(starts))).copy()
        return Candidates(rows=rows, starts_x=starts, score=score)
    d = float(table.d[j])
    cost = book.run_cost(rows, starts, d)
    cost *= float(table.weight_kw[j]) * book.grid.step_h * book.pue[rows][:, None]
    late_start = starts[None, :] >= book.start_end[rows][:, None]
    if late_start.any():
        cost[late_start] = np.inf
    if not np.isfinite(cost).any():
        return _run_now_home(j, table)
    if policy is Policy.CARBON_TIME and not table.deployment[j]:
        cost = _carbon_time(cost, starts, float(table.x_e[j]), d)
    else:
        extra = wait_costs(table, np.array([j]), starts[None, :], book)
        if extra is not None:
            cost += extra
        margin = DEPLOYMENT_MARGIN if table.deployment[j] else STABILITY_MARGIN
        _stability_bonus(cost, rows, starts, int(current.row[j]), float(current.start_x[j]), margin)
    return Candidates(rows=rows, starts_x=starts, score=cost)


def wait_costs(
    table: JobTable, jobs: IntArray, starts_x: FloatArray, book: PriceBook
) -> FloatArray | None:
    """The time value of each start of each job in ``jobs``, grams to add to its emissions:
    ``WAIT_KWH_PER_H`` x ``book.mean_g_per_kwh`` per hour past the job's earliest start,
    ``(len(jobs), starts)`` for ``starts_x`` of that shape (a row per job). None when no job has
    one (other policies, deployments).

    The per-job path (``candidates``) and the block path (``scheduler.planning.batch``) both
    add it to the emissions before the stability bonus, so they score alike. It is linear in the
    start, so a run's score stays linear between price breaks and ``break_starts`` still holds
    the cheapest start."""
    kwh_per_h = np.array([WAIT_KWH_PER_H.get(table.policy[j], 0.0) for j in jobs.tolist()])
    kwh_per_h[table.deployment[jobs]] = 0.0
    if not kwh_per_h.any():
        return None
    rate = kwh_per_h * book.mean_g_per_kwh * book.grid.step_h
    out: FloatArray = rate[:, None] * (starts_x - table.x_e[jobs][:, None])
    return out


def _rows(j: int, table: JobTable, book: PriceBook, policy: Policy) -> IntArray:
    allowed = table.allowed[j]
    if policy is Policy.NOW:
        home = int(table.home[j])
        return np.array([home] if home >= 0 and home in allowed else [], dtype=np.int64)
    if policy in HOME_ONLY:
        home = int(table.home[j])
        keep = home >= 0 and home in allowed and bool(book.priced[home])
        return np.array([home] if keep else [], dtype=np.int64)
    priced: IntArray = allowed[book.priced[allowed]]
    return priced


def _starts(
    j: int, table: JobTable, book: PriceBook, rows: IntArray, current_x: float, every: bool
) -> FloatArray:
    d = float(table.d[j])
    x_e = float(table.x_e[j])
    if table.deployment[j]:
        return np.array([x_e])
    n_slots = book.grid.n_slots
    last = float(n_slots) - d
    if table.policy[j] is not Policy.NOW:
        last = min(last, float(book.start_end[rows].max()) - 1.0)
    starts = candidate_starts(x_e, float(table.x_l[j]), last)
    if every or len(starts) < 3:
        return starts
    kept = break_starts(book.breaks, int(starts[1]), int(starts[-1]), d, current_x)
    return np.concatenate((starts[:1], kept.astype(np.float64)))


def break_starts(breaks: IntArray, lo: int, hi: int, d: float, current_x: float) -> IntArray:
    """The slot-boundary starts in ``[lo, hi]`` where a run of ``d`` slots can be cheapest.

    Prices are flat between breaks, so the cost of a run is linear in its start except where
    its start or its end crosses a break: the minimum over any range of starts is at ``lo``,
    ``hi``, a break, or a boundary next to ``break - d``. ``current_x`` (a current plan's
    start) is kept too so it can be kept. All of ``[lo, hi]`` when that is not fewer.
    """
    first = int(np.searchsorted(breaks, lo))
    last = int(np.searchsorted(breaks, hi + d + 1.0))
    near = breaks[first:last]
    if 3 * len(near) + 3 >= hi - lo + 1:
        return np.arange(lo, hi + 1, dtype=np.int64)
    shifted = near - d
    extra = [current_x] if math.isfinite(current_x) and current_x == int(current_x) else []
    cand = np.concatenate(([lo, hi], near, np.floor(shifted), np.ceil(shifted), extra))
    cand = cand[(cand >= lo) & (cand <= hi)]
    out: IntArray = np.unique(cand.astype(np.int64))
    return out


def _run_now_home(j: int, table: JobTable) -> Candidates:
    """No priced region the policy may use: run now at home (if home is a known region)."""
    home = int(table.home[j])
    rows = np.array([home] if home >= 0 else [], dtype=np.int64)
    starts = candidate_starts(
        float(table.x_e[j]), float(table.x_l[j]), float(table.grid.n_slots) - float(table.d[j])
    )
    score = np.broadcast_to(starts, (len(rows), len(starts))).copy()
    return Candidates(rows=rows, starts_x=starts, score=score, unpriced=True)


def _carbon_time(cost: FloatArray, starts: FloatArray, x_e: float, d: float) -> FloatArray:
    """Score ``-(C(now) - C(s)) / (wait + d)``; run-now scores 0."""
    saved = cost[:, :1] - cost
    ratio = saved / ((starts - x_e) + d)[None, :]
    score: FloatArray = np.where(np.isfinite(cost), -ratio, np.inf)
    score[:, 0] = np.where(np.isfinite(cost[:, 0]), 0.0, np.inf)
    return score


def _stability_bonus(
    cost: FloatArray,
    rows: IntArray,
    starts: FloatArray,
    row: int,
    start_x: float,
    margin: float,
) -> None:
    if row < 0 or math.isnan(start_x):
        return
    hit_rows = np.flatnonzero(rows == row)
    hit_starts = np.flatnonzero(np.abs(starts - start_x) < 1e-6)
    if hit_rows.size and hit_starts.size:
        i, w = int(hit_rows[0]), int(hit_starts[0])
        if math.isfinite(cost[i, w]) and cost[i, w] > 0:
            cost[i, w] *= 1.0 - margin

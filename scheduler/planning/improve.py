"""Closing the greedy's gap under contention, within the cycle's budget.

Only jobs placed jointly (``greenlight``, ``oracle``) move; every other job keeps the capacity
its policy took. When no joint job was displaced by capacity the greedy is already optimal (the
objective is a sum of per-job scores) and no search runs. Otherwise the starting points are the
greedy's placement, the joint jobs re-placed longest first, the joint jobs placed as ``now``
would place them, and (small enough instances) the LP rounding of
``scheduler.planning.rounding``; each gets a short local search (``scheduler.planning.search``),
and the best one gets the rest of the budget in ruin-and-recreate moves. Every move keeps jobs
before their deadlines and within capacity, so the result (fewest late jobs, then lowest total
score) is never worse than the greedy's.

Never worse than running now: a score with a time value (``policies.WAIT_KWH_PER_H``) may
prefer an earlier, dirtier start, so the result is also held to emit no more on the forecast
than the ``now`` placement of the same jobs, whenever the budget pays for building that one
(always on small snapshots): when the best placement would emit more, the best one that does
not is taken (at worst the ``now`` placement itself). The time value only chooses among
placements that beat running now.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from scheduler.domain import Policy
from scheduler.planning.capacity import CapacityLedger, held, spans
from scheduler.planning.placement import Assignment, Placer
from scheduler.planning.policies import WAIT_KWH_PER_H, Books, CurrentPlans
from scheduler.planning.rounding import LP_MAX_CANDIDATES, candidate_count, lp_starts
from scheduler.planning.search import (
    WORK_PER_CANDIDATES_CALL,
    Effort,
    LocalSearch,
    joint_jobs,
)
from scheduler.planning.table import JobTable

# Share of the budget the starting points' quick local searches get, together.
QUICK_SHARE = 0.3
GUARD_NOTE = "forecast error margin would cost more than running now: runs now"
Start = tuple[Assignment, CapacityLedger]


def improve(
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    ledger: CapacityLedger,
    a: Assignment,
    budget_s: float,
) -> Assignment:
    """The best placement found within ``budget_s`` (see the module docstring); ``ledger`` is
    updated in place to match the returned assignment."""
    joint = joint_jobs(table, a)
    if budget_s <= 0 or not joint:
        return a
    displaced = sorted(a.displaced.intersection(joint))
    timed = any(WAIT_KWH_PER_H.get(table.policy[j], 0.0) and not table.deployment[j] for j in joint)
    if not displaced and not timed:
        return a
    effort = Effort(budget_s)
    residual = _lazy_residual(table, ledger, a, joint)
    as_now = _run_now(table, books, current, residual, a, joint, effort)
    if not displaced:
        # Every joint job has its best candidate: only the run-now bound can bind.
        return _within_now(table, books, ledger, [(a, ledger)], as_now)
    starts: list[tuple[Assignment, CapacityLedger, list[int]]] = [
        (a.copy(), ledger.copy(), displaced)
    ]
    by_score = sorted(joint, key=lambda j: -float(a.score[j]))
    longest = _longest_first(table, books, current, residual, a, joint, effort)
    for other in (longest, as_now):
        if other is not None:
            starts.append((other[0].copy(), other[1].copy(), by_score))
    if candidate_count(table, joint) <= LP_MAX_CANDIDATES:
        starts += [
            (s_a, s_l, by_score)
            for s_a, s_l in lp_starts(table, books, current, residual(), a, joint, effort)
        ]
    quick = Effort(max(effort.left, 0.0) * QUICK_SHARE / 1e6)
    searches = []
    for n, (start_a, start_ledger, first) in enumerate(starts):
        share = quick.share(len(starts) - n)
        search = LocalSearch(Placer(table, books, current, start_ledger), start_a, joint, share)
        search.run(first)
        quick.spend(share.spent)
        searches.append(search)
    effort.spend(quick.spent)
    best = min(searches, key=lambda s: s.a.objective())
    best.effort = effort
    best.ruin_recreate_until_spent()
    found = [(s.a, s.placer.ledger) for s in sorted(searches, key=lambda s: s.a.objective())]
    return _within_now(table, books, ledger, found, as_now)


def _within_now(
    table: JobTable,
    books: Books,
    ledger: CapacityLedger,
    found: list[Start],
    as_now: Start | None,
) -> Assignment:
    """The first of ``found`` (best first) that emits no more on the forecast than ``as_now``
    (``as_now`` itself when none does; the first when there is no ``as_now``); ``ledger`` is
    set to its ledger."""
    chosen = found[0]
    if as_now is not None:
        bound_g = forecast_emissions_g(table, books, as_now[0])
        tol_g = 1e-9 * max(abs(bound_g), 1.0)
        chosen = next(
            (f for f in found if forecast_emissions_g(table, books, f[0]) <= bound_g + tol_g),
            as_now,
        )
    if chosen[1] is not ledger:
        ledger.assign(chosen[1].free)
    return chosen[0]


def forecast_emissions_g(table: JobTable, books: Books, a: Assignment) -> float:
    """Total emissions of the placed jobs of ``a`` on the data their plans are reported on
    (``Books.reporting``), grams, as ``plans`` prices them (power x PUE x intensity x h);
    unpriced placements count 0."""
    total = 0.0
    placed = a.row >= 0
    for policy in sorted(set(table.policy), key=lambda p: p.value):
        book = books.reporting(policy)
        jobs = np.flatnonzero(
            placed & np.array([p is policy for p in table.policy], dtype=np.bool_)
        )
        jobs = jobs[book.priced[a.row[jobs]]]
        if jobs.size == 0:
            continue
        plain = np.array([j for j in jobs.tolist() if j not in a.splits], dtype=np.int64)
        kw = table.power_kw * book.grid.step_h
        if plain.size:
            cost = book.pointwise_cost(a.row[plain], a.start_x[plain], table.d[plain])
            total += float((kw[plain] * book.pue[a.row[plain]] * cost).sum())
        for j in (j for j in jobs.tolist() if j in a.splits):
            row = np.array([a.row[j]])
            for x0, x1 in a.splits[j]:
                cost = book.pointwise_cost(row, np.array([x0]), np.array([x1 - x0]))
                total += float(kw[j] * book.pue[row[0]] * cost[0])
    return total


def _lazy_residual(
    table: JobTable, ledger: CapacityLedger, a: Assignment, joint: list[int]
) -> Callable[[], CapacityLedger]:
    """``ledger`` without the GPUs the ``joint`` jobs hold in ``a``, built on first call (the
    alternative starting points need it; a large cycle whose budget pays for none skips it)."""
    built: list[CapacityLedger] = []

    def residual() -> CapacityLedger:
        if not built:
            built.append(_release_all(table, ledger, a, joint))
        return built[0]

    return residual


def _release_all(
    table: JobTable, ledger: CapacityLedger, a: Assignment, joint: list[int]
) -> CapacityLedger:
    """``ledger`` with every job of ``joint`` released, as one cumulative sum per region."""
    jobs = np.array(joint, dtype=np.int64)
    jobs = jobs[(a.row[jobs] >= 0) & (table.gpus[jobs] > 0)]
    split = np.array([j in a.splits for j in jobs.tolist()], dtype=np.bool_)
    lo, hi = spans(a.start_x[jobs], table.d[jobs], ledger.n_slots)
    keep = ~split & (hi > lo)
    rows, gpus = a.row[jobs][keep], table.gpus[jobs][keep]
    out = CapacityLedger(ledger.free + held(ledger.free.shape, rows, lo[keep], hi[keep], gpus))
    for j in jobs[split].tolist():
        for x0, x1 in a.splits[j]:
            out.release(int(a.row[j]), x0, x1 - x0, int(table.gpus[j]))
    return out


def _run_now(
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    residual: Callable[[], CapacityLedger],
    a: Assignment,
    joint: list[int],
    effort: Effort,
) -> Start | None:
    """The joint jobs placed as the ``now`` policy would (home, earliest free start, least
    slack first), scored by their own policy: a starting point, and the bound the result's
    emissions are held to (see the module docstring). None when that strands a job, cannot be
    scored, or the budget cannot pay for it."""
    cost = WORK_PER_CANDIDATES_CALL * 2 * len(joint)
    if cost > effort.left / 3:
        return None
    effort.spend(cost)
    movable = set(joint)
    as_now = dataclasses.replace(
        table, policy=tuple(Policy.NOW if j in movable else p for j, p in enumerate(table.policy))
    )
    out, ledger = a.copy(), residual().copy()
    placer = Placer(as_now, books, current, ledger)
    scorer = Placer(table, books, current, ledger)
    for j in (int(j) for j in table.order() if int(j) in movable):
        placer.place(out, j)
        own = scorer.candidates(j, every_start=True)
        rows = np.flatnonzero(own.rows == out.row[j])
        starts = np.flatnonzero(np.abs(own.starts_x - out.start_x[j]) < 1e-9)
        if j in out.late or not rows.size or not starts.size:
            return None
        out.score[j] = own.score[rows[0], starts[0]]
    return out, ledger


def _longest_first(
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    residual: Callable[[], CapacityLedger],
    a: Assignment,
    joint: list[int],
    effort: Effort,
) -> Start | None:
    """The joint jobs re-placed greedily, longest (then widest) first; None when that strands
    a job or the budget cannot pay for it."""
    cost = WORK_PER_CANDIDATES_CALL * 2 * len(joint)
    if cost > effort.left / 3:
        return None
    effort.spend(cost)
    out, ledger = a.copy(), residual().copy()
    placer = Placer(table, books, current, ledger)
    for j in sorted(joint, key=lambda j: (-float(table.d[j]), -int(table.gpus[j]), j)):
        placer.place(out, j)
        if j in out.late:
            return None
    return out, ledger


def guard_run_now(table: JobTable, books: Books, ledger: CapacityLedger, a: Assignment) -> None:
    """Move a ``greenlight`` job to run-now at home when its plan would emit more than that on
    the forecast (possible only through the error margin) and run-now has free GPUs."""
    book = books.forecast
    jobs = np.array(
        [
            j
            for j in joint_jobs(table, a)
            if table.policy[j] is Policy.GREENLIGHT
            and table.home[j] >= 0
            and book.priced[table.home[j]]
        ],
        dtype=np.int64,
    )
    if jobs.size == 0 or books.robust is books.forecast:
        return
    now_cost = book.pointwise_cost(table.home[jobs], table.x_e[jobs], table.d[jobs])
    now_g = now_cost * book.pue[table.home[jobs]]
    placer = Placer(table, books, CurrentPlans(np.zeros(0, np.int64), np.zeros(0)), ledger)
    planned = book.pointwise_cost(a.row[jobs], a.start_x[jobs], table.d[jobs])
    for i, j in enumerate(jobs):
        if int(j) in a.splits:
            runs = placer.windows(a, int(j))
            planned[i] = sum(
                float(book.pointwise_cost(a.row[j : j + 1], np.array([x0]), np.array([x1 - x0]))[0])
                for x0, x1 in runs
            )
    planned_g = planned * book.pue[a.row[jobs]]
    for j in jobs[planned_g > now_g * (1 + 1e-9)]:
        j = int(j)
        home, x_e, d = int(table.home[j]), float(table.x_e[j]), float(table.d[j])
        placer.release(a, j)
        if ledger.fits(home, x_e, d, int(table.gpus[j])):
            placer.commit(a, j, home, x_e, float(a.score[j]))
            a.notes[j] = GUARD_NOTE
        else:
            placer.retake(a, j)

"""Closing the greedy's gap under contention, within the cycle's budget.

Only jobs placed jointly (``greenlight``, ``oracle``) move; every other job keeps the capacity
its policy took. When no joint job was displaced by capacity the greedy is already optimal (the
objective is a sum of per-job scores) and nothing runs. Otherwise the starting points are the
greedy's placement, the joint jobs re-placed longest first, the joint jobs placed as ``now``
would place them (so the result is never worse than running now), and (small enough instances)
the LP
roundings of ``scheduler.planning.rounding``; each gets a short local search
(``scheduler.planning.search``), and the best one gets the rest of the budget in
ruin-and-recreate moves. Every move keeps jobs before their deadlines and within capacity, so
the result (fewest late jobs, then lowest total score) is never worse than the greedy's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scheduler.domain import Policy
from scheduler.planning.capacity import CapacityLedger
from scheduler.planning.placement import Assignment, Placer
from scheduler.planning.policies import Books, CurrentPlans
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
    displaced = sorted(a.displaced.intersection(joint))
    if not displaced or budget_s <= 0:
        return a
    effort = Effort(budget_s)
    starts: list[tuple[Assignment, CapacityLedger, list[int]]] = [
        (a.copy(), ledger.copy(), displaced)
    ]
    by_score = sorted(joint, key=lambda j: -float(a.score[j]))
    residual = ledger.copy()
    releaser = Placer(table, books, current, residual)
    for j in joint:
        releaser.release(a, j)
    for alternative in (_longest_first, _run_now):
        other = alternative(table, books, current, residual, a, joint, effort)
        if other is not None:
            starts.append((*other, by_score))
    if candidate_count(table, joint) <= LP_MAX_CANDIDATES:
        starts += [
            (s_a, s_l, by_score)
            for s_a, s_l in lp_starts(table, books, current, residual, a, joint, effort)
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
    ledger.assign(best.placer.ledger.free)
    return best.a


def _run_now(
    table: JobTable,
    books: Books,
    current: CurrentPlans,
    residual: CapacityLedger,
    a: Assignment,
    joint: list[int],
    effort: Effort,
) -> tuple[Assignment, CapacityLedger] | None:
    """The joint jobs placed as the ``now`` policy would (home, earliest free start, least
    slack first), scored by their own policy: with it among the starting points the result is
    never worse than running now. None when that strands a job or cannot be scored."""
    cost = WORK_PER_CANDIDATES_CALL * 2 * len(joint)
    if cost > effort.left / 3:
        return None
    effort.spend(cost)
    movable = set(joint)
    as_now = dataclasses.replace(
        table, policy=tuple(Policy.NOW if j in movable else p for j, p in enumerate(table.policy))
    )
    out, ledger = a.copy(), residual.copy()
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
    residual: CapacityLedger,
    a: Assignment,
    joint: list[int],
    effort: Effort,
) -> tuple[Assignment, CapacityLedger] | None:
    """The joint jobs re-placed greedily, longest (then widest) first; None when that strands
    a job or the budget cannot pay for it."""
    cost = WORK_PER_CANDIDATES_CALL * 2 * len(joint)
    if cost > effort.left / 3:
        return None
    effort.spend(cost)
    out, ledger = a.copy(), residual.copy()
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

"""One planning cycle: ``plan_cycle(snapshot) -> Decision``, the entry point of the core.

The service and the simulator both call it. Steps: lay the grid from the cycle's slot-aligned
``now``; price every region (forecasts; pessimistic prices for ``greenlight``; actuals for
``oracle``); subtract running jobs from capacity; place every job by its policy, least slack
first, repaired for deadlines (``placement``); improve the jointly placed jobs within the
snapshot's budget (``improve``); split interruptible jobs into their cheapest slots (``split``);
keep ``greenlight`` jobs never worse than run-now at home on the forecast; write the plans.
Jobs whose current plan still holds (``stability``) keep it and are not placed again; when the
jobs placed around them leave some late, windows are cleared for those (``clearing``), then
wider repairs follow (see ``plan_cycle``).
Deployments asking for a share of one GPU are first packed per region (``consolidation``).
Capacity is shared by every job whatever its policy. Pure: no clock, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from scheduler.domain import Plan, Policy
from scheduler.planning.capacity import CapacityLedger
from scheduler.planning.clearing import clear_for_late
from scheduler.planning.consolidation import consolidate
from scheduler.planning.deadlines import place_within_deadlines, repair_by_ejecting
from scheduler.planning.finite import check_decision, check_jobs
from scheduler.planning.grid import BoolArray, FloatArray, IntArray
from scheduler.planning.improve import guard_run_now, improve
from scheduler.planning.placement import Assignment
from scheduler.planning.plans import build_decision
from scheduler.planning.policies import Books, current_plans
from scheduler.planning.prices import build_price_book
from scheduler.planning.snapshot import Decision, Snapshot
from scheduler.planning.split import split_interruptible
from scheduler.planning.stability import kept_jobs, run_now_frees, subset, take_kept
from scheduler.planning.table import JobTable, build_table


def planning_inputs(snapshot: Snapshot) -> tuple[JobTable, Books, CapacityLedger]:
    """The grid-level inputs of a cycle: the job table (and its grid), the price books and the
    capacity."""
    now = snapshot.now
    ends = [
        f.end
        for f in (*snapshot.forecasts.values(), *snapshot.actuals.values())
        if f.end is not None
    ] + [o.end for o in snapshot.occupancy]
    table = build_table(
        snapshot.jobs, snapshot.regions, now, snapshot.step_s, max(ends) if ends else None
    )
    grid = table.grid
    forecast = build_price_book(grid, snapshot.regions, snapshot.forecasts)
    policies = set(table.policy)
    robust = forecast
    if Policy.GREENLIGHT in policies and snapshot.forecast_error:
        robust = forecast.with_error_margin(snapshot.forecast_error, now)
    actual = None
    if Policy.ORACLE in policies and snapshot.actuals:
        actual = build_price_book(grid, snapshot.regions, snapshot.actuals)
    ledger = CapacityLedger.build(grid, snapshot.regions, snapshot.occupancy)
    return table, Books(forecast=forecast, robust=robust, actual=actual), ledger


def plan_cycle(snapshot: Snapshot) -> Decision:
    """Plans for every job in ``snapshot`` (see the module docstring).

    Jobs whose current plan still holds on this snapshot keep it (``stability``); the others
    are placed around them. Deterministic for the same snapshot. Jobs that cannot meet their
    deadline any more are planned as early as free GPUs allow and listed in ``Decision.late``.
    Raises UnplannableJob naming a job whose numbers are non-finite or out of range, or whose
    plan came out so.
    """
    if not snapshot.jobs:
        return Decision(plans={})
    snapshot, crowded = consolidate(snapshot)  # shares of a GPU: packed per region first
    if crowded:
        others = plan_cycle(snapshot)
        return dataclasses.replace(others, notes={**others.notes, **crowded})
    check_jobs(snapshot.jobs)
    table, books, base = planning_inputs(snapshot)
    keep, row, start_x, worse = kept_jobs(table, books)
    decision: Decision | None = None
    if keep.any():
        ledger = base.copy()
        keep = take_kept(table, ledger, keep, row, start_x)
        keep = run_now_frees(table, ledger, keep, worse, row, start_x)
        rest = np.flatnonzero(~keep)
        # The repairs come after, over every job (kept ones movable too): the rest's own
        # repair, with only the rest to move, would find nothing they cannot.
        placed = (
            _place(subset(table, rest), books, ledger, snapshot, repair=False)
            if rest.size
            else None
        )
        decided = placed[0] if placed else None
        kept = _kept_plans(table, keep, snapshot)
        decision = Decision(
            plans={**kept, **_plans(decided)},
            late=dict(decided.late) if decided else {},
            notes=dict(decided.notes) if decided else {},
        )
        # Repairs when some are late, cheapest first, each from ``placed``, the best kept; a
        # repair that leaves none late ends them. First a window cleared per late job and the
        # jobs lifted from it placed again in a chain (a few hundred plans move at most).
        around = Around(keep, row, start_x, rest, placed, kept) if placed else None
        if decision.late and around is not None:
            cleared = _clear_for_late(table, books, around, snapshot)
            if cleared is not None and len(cleared.late) < len(decision.late):
                decision = cleared
        if decision.late and around is not None:  # kept jobs may be in the way: lift a few
            repaired = _eject_kept(table, books, around, snapshot)
            if repaired is not None and len(repaired.late) < len(decision.late):
                decision = repaired
        if decision.late and around is not None:  # free the late jobs' home rows: place again
            wider = _place_around(table, books, base, around, snapshot)
            if wider is not None and len(wider.late) < len(decision.late):
                decision = wider
        if decision.late:  # still late: place everything, take the better
            full = _place(table, books, base, snapshot)[0]
            if len(full.late) < len(decision.late):
                decision = full
    if decision is None:
        decision = _place(table, books, base, snapshot)[0]
    check_decision(decision)
    return decision


def _from_now(plan: Plan, start: datetime) -> Plan:
    """A kept plan as it is, or, when its start has passed (it is due), starting at ``start``
    (no plan starts before ``now``)."""
    if plan.start >= start:
        return plan
    w = plan.windows[0]
    return dataclasses.replace(
        plan, windows=(dataclasses.replace(w, start=start, end=start + (w.end - w.start)),)
    )


def _plans(decision: Decision | None) -> Mapping[str, Plan]:
    return decision.plans if decision is not None else {}


@dataclass(frozen=True)
class Around:
    """The jobs placed around the kept ones, as the repairs start from them: which jobs kept
    their plan (``keep``) at which row and start (slots), the rest's indices, their
    placement (decision, assignment, ledger it leaves) and the kept jobs' plans by id."""

    keep: BoolArray
    row: IntArray
    start_x: FloatArray
    rest: IntArray
    placed: tuple[Decision, Assignment, CapacityLedger]
    kept: Mapping[str, Plan]

    def whole(self) -> Assignment:
        """One assignment of every job: the kept ones where they are, the rest as placed."""
        sub, rest = self.placed[1], self.rest
        a = Assignment.empty(len(self.keep))
        held = np.flatnonzero(self.keep)
        a.row[held], a.start_x[held], a.score[held] = self.row[held], self.start_x[held], 0.0
        a.row[rest], a.start_x[rest], a.score[rest] = sub.row, sub.start_x, sub.score
        a.late = {int(rest[k]): r for k, r in sub.late.items()}
        a.notes = {int(rest[k]): r for k, r in sub.notes.items()}
        a.splits = {int(rest[k]): w for k, w in sub.splits.items()}
        return a


def _kept_plans(table: JobTable, keep: BoolArray, snapshot: Snapshot) -> dict[str, Plan]:
    return {
        job.id: _from_now(job.current_plan, max(snapshot.now, job.earliest_start))
        for job in (table.jobs[j] for j in np.flatnonzero(keep).tolist())
        if job.current_plan is not None
    }


def _eject_kept(
    table: JobTable, books: Books, around: Around, snapshot: Snapshot
) -> Decision | None:
    """The jobs placed around the kept ones left some late: the whole assignment (kept jobs
    where they are, the rest as placed) repaired by lifting the fewest jobs in the late jobs'
    way (``deadlines.repair_by_ejecting``), kept ones included: plans built anew for the jobs
    placed around the kept ones and the kept ones the repair moved, the other kept ones as
    kept. None when nothing is late or the repair leaves as many late."""
    a = around.whole()
    if not a.late:
        return None
    current = current_plans(table, table.grid)
    repaired, _ = repair_by_ejecting(table, books, current, a, around.placed[2].copy())
    if len(repaired.late) >= len(a.late):
        return None  # no better: the caller keeps what it has
    moved = np.flatnonzero(
        ~around.keep | (repaired.row != around.row) | (repaired.start_x != around.start_x)
    )
    again = build_decision(subset(table, moved), books, repaired.subset(moved), snapshot.now)
    return Decision(plans={**around.kept, **again.plans}, late=again.late, notes=again.notes)


def _clear_for_late(
    table: JobTable, books: Books, around: Around, snapshot: Snapshot
) -> Decision | None:
    """Each late job given a window cleared of the jobs in its way, however many, those placed
    again in a chain (``clearing``); the other plans stay (kept ones as kept, the rest as
    placed). None when no late job got a window."""
    decided, _, ledger = around.placed
    a = around.whole()
    if not a.late:
        return None
    changed = clear_for_late(table, books, a, ledger.copy())
    if changed is None:
        return None
    again = build_decision(subset(table, changed), books, a.subset(changed), snapshot.now)
    moved = set(again.plans)
    stay = {i: p for i, p in {**around.kept, **decided.plans}.items() if i not in moved}
    notes = {i: n for i, n in decided.notes.items() if i not in moved}
    return Decision(plans={**stay, **again.plans}, late=again.late, notes={**notes, **again.notes})


def _place_around(
    table: JobTable, books: Books, base: CapacityLedger, around: Around, snapshot: Snapshot
) -> Decision | None:
    """Place again, with the late ones, the kept jobs of each late job's home region whose runs
    overlap the late job's window (long wide jobs need room that kept plans fragment); the
    other kept plans stay. None when no kept job is in the way."""
    keep, row, start_x, rest = around.keep.copy(), around.row, around.start_x, around.rest
    for k in around.placed[1].late:
        j = int(rest[k])
        home = int(table.home[j]) if table.home[j] >= 0 else int(table.allowed[j][0])
        lo, hi = float(table.x_e[j]), float(table.x_l[j] + table.d[j])
        keep &= ~((row == home) & (start_x < hi) & (start_x + table.d > lo))
    if keep.sum() == len(table) - len(rest):
        return None
    ledger = base.copy()
    keep = take_kept(table, ledger, keep, row, start_x)
    again = np.flatnonzero(~keep)
    decided = _place(subset(table, again), books, ledger, snapshot)[0]
    kept = _kept_plans(table, keep, snapshot)
    return Decision(plans={**kept, **decided.plans}, late=decided.late, notes=decided.notes)


def _place(
    table: JobTable,
    books: Books,
    base: CapacityLedger,
    snapshot: Snapshot,
    *,
    repair: bool = True,
) -> tuple[Decision, Assignment, CapacityLedger]:
    """The placement pipeline over ``table`` on the capacity ``base`` leaves (not mutated):
    the decision, the assignment and the ledger it leaves. Without ``repair``, late jobs are
    left as the greedy leaves them (the caller repairs)."""
    current = current_plans(table, table.grid)
    assignment, ledger = place_within_deadlines(table, books, current, base, repair=repair)
    assignment = improve(table, books, current, ledger, assignment, snapshot.budget_s)
    split_interruptible(table, books, ledger, assignment)
    guard_run_now(table, books, ledger, assignment)
    return build_decision(table, books, assignment, snapshot.now), assignment, ledger

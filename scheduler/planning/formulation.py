"""The time-indexed formulation of joint placement, for HiGHS (``scipy.optimize``).

One variable per candidate ``x[j, r, s]`` (job ``j`` in region ``r`` from start ``s``): each job
takes exactly one candidate, and in every region and slot the GPUs of the candidates covering
it stay within the free GPUs. Minimising the candidates' scores is the exact problem as a MIP
(``scheduler.planning.optimum``) and its LP relaxation guides rounding in the improvement phase.
Only ``(region, slot)`` rows that some choice of candidates could overbook are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, linprog, milp

from scheduler.planning.capacity import SPAN_EPS
from scheduler.planning.grid import FloatArray, IntArray
from scheduler.planning.placement import Placer


@dataclass(frozen=True, slots=True)
class CandidateSet:
    """Flat candidates of a set of jobs: job index, row, start (slots), score, span ``[a, b)``."""

    job: IntArray
    row: IntArray
    start_x: FloatArray
    score: FloatArray
    a: IntArray
    b: IntArray

    def __len__(self) -> int:
        return len(self.job)


def enumerate_candidates(
    placer: Placer,
    jobs: Sequence[int],
    *,
    every_start: bool = False,
) -> CandidateSet:
    """Every finite-score candidate of ``jobs`` that meets the job's deadline (capacity not
    checked); only those next to price breaks unless ``every_start``."""
    parts: list[tuple[IntArray, IntArray, FloatArray, FloatArray]] = []
    latest = placer.table.x_l
    for j in jobs:
        c = placer.candidates(j, every_start=every_start)
        i, w = np.nonzero(np.isfinite(c.score) & (c.starts_x <= latest[j] + 1e-9)[None, :])
        parts.append((np.full(len(i), j, dtype=np.int64), c.rows[i], c.starts_x[w], c.score[i, w]))
    if not parts:
        empty_i = np.zeros(0, dtype=np.int64)
        return CandidateSet(empty_i, empty_i, np.zeros(0), np.zeros(0), empty_i, empty_i)
    job = np.concatenate([p[0] for p in parts])
    start = np.concatenate([p[2] for p in parts])
    d = placer.table.d[job]
    a = np.floor(start + SPAN_EPS).astype(np.int64)
    b = np.maximum(a + 1, np.ceil(start + d - SPAN_EPS).astype(np.int64))
    b = np.minimum(b, placer.ledger.n_slots)
    return CandidateSet(
        job=job,
        row=np.concatenate([p[1] for p in parts]),
        start_x=start,
        score=np.concatenate([p[3] for p in parts]),
        a=a,
        b=b,
    )


@dataclass(frozen=True, slots=True)
class Formulation:
    """``min score @ x`` s.t. ``assign @ x == 1`` and ``capacity @ x <= free``; capacity row
    ``i`` is the ledger cell ``cells[i]`` (``region * S + slot``)."""

    cands: CandidateSet
    jobs: IntArray
    cells: IntArray
    assign: sparse.csr_matrix
    capacity: sparse.csr_matrix
    free: FloatArray


def formulate(cands: CandidateSet, gpus: IntArray, free: IntArray) -> Formulation:
    """Build the matrices; ``gpus`` per job index, ``free`` the ledger's ``(R, S)`` array."""
    jobs, job_pos = np.unique(cands.job, return_inverse=True)
    n = len(cands)
    assign = sparse.csr_matrix((np.ones(n), (job_pos, np.arange(n))), shape=(len(jobs), n))
    lengths = cands.b - cands.a
    col = np.repeat(np.arange(n), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    slot = np.repeat(cands.a, lengths) + offsets
    n_slots = free.shape[1]
    cell = np.repeat(cands.row, lengths) * n_slots + slot
    weight = np.repeat(gpus[cands.job].astype(np.float64), lengths)
    # A cell binds only if the jobs that could cover it might need more than is free. A job's
    # candidates in one region have consecutive starts, so together they cover one interval.
    group = np.flatnonzero(np.r_[True, (np.diff(cands.job) != 0) | (np.diff(cands.row) != 0)])
    lo = np.minimum.reduceat(cands.a, group)
    hi = np.maximum.reduceat(cands.b, group)
    base = cands.row[group] * (n_slots + 1)
    steps = np.zeros(free.shape[0] * (n_slots + 1))
    np.add.at(steps, base + lo, gpus[cands.job[group]].astype(np.float64))
    np.add.at(steps, base + hi, -gpus[cands.job[group]].astype(np.float64))
    demand = np.cumsum(steps.reshape(free.shape[0], n_slots + 1), axis=1)[:, :n_slots]
    binding = demand.ravel() > free.ravel()
    keep = binding[cell] & (weight > 0)
    cells, cell_row = np.unique(cell[keep], return_inverse=True)
    capacity = sparse.csr_matrix((weight[keep], (cell_row, col[keep])), shape=(len(cells), n))
    return Formulation(
        cands=cands,
        jobs=jobs,
        cells=cells,
        assign=assign,
        capacity=capacity,
        free=np.maximum(free.ravel()[cells], 0).astype(np.float64),
    )


def solve_lp(f: Formulation, time_limit_s: float, *, presolve: bool = True) -> OptimizeResult:
    """The LP relaxation with HiGHS; the result's ``x`` is None when it found no solution.
    Presolve pays off on the large offline LPs; on a cycle's small ones the dual simplex without
    it takes about half the time (``bench/regions.py``'s snapshots of 60 to 300 jobs)."""
    return linprog(
        f.cands.score,
        A_ub=f.capacity if f.capacity.shape[0] else None,
        b_ub=f.free if f.capacity.shape[0] else None,
        A_eq=f.assign,
        b_eq=np.ones(len(f.jobs)),
        bounds=(0.0, 1.0),
        method="highs" if presolve else "highs-ds",
        options={"time_limit": max(time_limit_s, 0.01), "presolve": presolve},
    )


def solve_mip(
    f: Formulation,
    time_limit_s: float,
    mip_rel_gap: float = 1e-6,
    node_limit: int | None = None,
) -> OptimizeResult:
    """The exact problem with HiGHS branch and bound; ``x`` may be the best found within the
    time (or ``node_limit`` branch-and-bound nodes: a deterministic limit)."""
    constraints = [LinearConstraint(f.assign, 1.0, 1.0)]
    if f.capacity.shape[0]:
        constraints.append(LinearConstraint(f.capacity, -np.inf, f.free))
    return milp(
        f.cands.score,
        constraints=constraints,
        integrality=np.ones(len(f.cands)),
        bounds=Bounds(0.0, 1.0),
        options={
            "time_limit": max(time_limit_s, 0.01),
            "mip_rel_gap": mip_rel_gap,
            "disp": False,
            **({"node_limit": node_limit} if node_limit else {}),
        },
    )

"""The optimum's MIP solved with live progress: the same optimum as ``solve_mip``, and reports
of the best solution and the bound, the best never below the bound."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from scheduler.planning.formulation import CandidateSet, Formulation, solve_mip
from scheduler.planning.mip_progress import solve_mip_reporting


def _knapsack_like(jobs: int, starts: int, seed: int) -> Formulation:
    """``jobs`` one-slot jobs, each with a candidate per start and a random score, at most two
    jobs per start: a small assignment problem with binding capacity."""
    rng = np.random.default_rng(seed)
    job = np.repeat(np.arange(jobs), starts)
    start = np.tile(np.arange(starts), jobs)
    n = len(job)
    cands = CandidateSet(
        job=job,
        row=np.zeros(n, dtype=np.int64),
        start_x=start.astype(np.float64),
        score=rng.uniform(10.0, 100.0, n),
        a=start,
        b=start + 1,
    )
    assign = sparse.csr_matrix((np.ones(n), (job, np.arange(n))), shape=(jobs, n))
    capacity = sparse.csr_matrix((np.ones(n), (start, np.arange(n))), shape=(starts, n))
    return Formulation(
        cands=cands,
        jobs=np.arange(jobs),
        cells=np.arange(starts),
        assign=assign,
        capacity=capacity,
        free=np.full(starts, 2.0),
    )


def test_the_reporting_solve_finds_the_same_optimum_and_reports_best_over_bound() -> None:
    f = _knapsack_like(jobs=12, starts=8, seed=3)
    reports: list[tuple[float, float, float]] = []
    result = solve_mip_reporting(f, 20.0, lambda t, best, bound: reports.append((t, best, bound)))
    plain = solve_mip(f, 20.0)
    assert result.x is not None
    assert plain.x is not None
    optimum = float(f.cands.score @ result.x)
    assert optimum == pytest.approx(float(f.cands.score @ np.asarray(plain.x)))
    assert (f.assign @ result.x == 1).all()
    assert (f.capacity @ result.x <= f.free + 1e-9).all()
    assert reports, "no progress reported"
    times = [t for t, _, _ in reports]
    assert times == sorted(times)
    assert all(best >= bound - 1e-6 for _, best, bound in reports)
    assert min(best for _, best, _ in reports) == pytest.approx(optimum)

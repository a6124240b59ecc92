"""The exact MIP with HiGHS, reporting its best solution and its bound as branch and bound goes.

scipy's ``milp`` takes no callback, but the HiGHS object scipy bundles has one (``setCallback``,
in the private ``scipy.optimize._highspy._core``). It is used when it is there; when it is not
(another scipy), ``solve_mip`` runs instead and reports nothing. The model and the options are
``solve_mip``'s: the same problem, the same optimum (ties may break differently).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import OptimizeResult

from scheduler.planning.formulation import Formulation, solve_mip

MipProgress = Callable[[float, float, float], None]
"""``(seconds since the start, best objective found, proven lower bound)``; ``inf``/``-inf``
while unknown."""
REPORT_EVERY_S = 1.0
_FEASIBLE = 2  # HiGHS kSolutionStatusFeasible


def solve_mip_reporting(
    f: Formulation,
    time_limit_s: float,
    progress: MipProgress,
    mip_rel_gap: float = 1e-6,
    every_s: float = REPORT_EVERY_S,
) -> OptimizeResult:
    """``solve_mip`` that calls ``progress`` on each better solution and at most every
    ``every_s`` while the bound moves. The result's ``x`` is None when no solution was found."""
    try:
        from scipy.optimize._highspy import _core
    except ImportError:
        return solve_mip(f, time_limit_s, mip_rel_gap)
    try:
        highs = _model(_core, f, time_limit_s, mip_rel_gap)
    except (AttributeError, TypeError):  # a scipy whose private HiGHS binding differs
        return solve_mip(f, time_limit_s, mip_rel_gap)
    # Seconds come from HiGHS's own running time: the planning core reads no clock.
    last = [-math.inf, math.inf, -math.inf]  # time reported, best, bound

    def callback(kind: Any, _message: str, out: Any, _inp: Any, _user: Any) -> None:
        best, bound = float(out.mip_primal_bound), float(out.mip_dual_bound)
        now = float(out.running_time)
        improved = best < last[1]
        if improved or (bound > last[2] and now - last[0] >= every_s):
            last[:] = [now, best, bound]
            progress(now, best, bound)

    highs.setCallback(callback, None)
    highs.startCallback(_core.cb.HighsCallbackType.kCallbackMipImprovingSolution)
    highs.startCallback(_core.cb.HighsCallbackType.kCallbackMipInterrupt)
    highs.run()
    info = highs.getInfo()
    if info.primal_solution_status != _FEASIBLE:
        return OptimizeResult(x=None, fun=None, status=highs.getModelStatus())
    x = np.asarray(highs.getSolution().col_value, dtype=np.float64)
    return OptimizeResult(x=x, fun=float(f.cands.score @ x), status=highs.getModelStatus())


def _model(core: Any, f: Formulation, time_limit_s: float, mip_rel_gap: float) -> Any:
    n_jobs, n_cells = f.assign.shape[0], f.capacity.shape[0]
    matrix = sparse.vstack([f.assign, f.capacity]).tocsc()
    lp = core.HighsLp()
    lp.num_col_, lp.num_row_ = len(f.cands), n_jobs + n_cells
    lp.col_cost_ = np.asarray(f.cands.score, dtype=np.float64)
    lp.col_lower_, lp.col_upper_ = np.zeros(len(f.cands)), np.ones(len(f.cands))
    lp.row_lower_ = np.concatenate([np.ones(n_jobs), np.full(n_cells, -np.inf)])
    lp.row_upper_ = np.concatenate([np.ones(n_jobs), f.free])
    lp.a_matrix_.format_ = core.MatrixFormat.kColwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = lp.num_col_, lp.num_row_
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    lp.integrality_ = [core.HighsVarType.kInteger] * len(f.cands)
    options = core.HighsOptions()
    options.time_limit = max(time_limit_s, 0.01)
    options.mip_rel_gap = mip_rel_gap
    options.output_flag = False
    highs = core._Highs()
    if core.HighsStatus.kError in (highs.passOptions(options), highs.passModel(lp)):
        raise TypeError("HiGHS refused the model")
    return highs

"""Choosing again for many jobs of a block at once, against the ledger as it is now.

When a job's block choice was taken by a job earlier in its block, the jobs after it mostly lost
theirs too (they all wanted the same cheap window). Rather than choose again one job at a time,
the next jobs of the block choose again together from their kept scores (``Choices.scores``)
against the ledger at that moment. Each new choice is the best one free then; the ledger only
shrinks as the greedy goes on, so a choice still free at its job's turn is exactly what that
job would choose at its turn, by the same rules and tie-breaking as ``BatchChooser.rechoose``.
"""

from __future__ import annotations

import numpy as np

from scheduler.planning.batch import PER_JOB, Choices
from scheduler.planning.capacity import CapacityLedger
from scheduler.planning.grid import BoolArray, IntArray
from scheduler.planning.table import JobTable
from scheduler.planning.window import TIE_RTOL


def rechoose_many(
    table: JobTable,
    jobs: IntArray,
    choices: Choices,
    at: IntArray,
    ledger: CapacityLedger,
) -> BoolArray:
    """Re-choose jobs ``jobs[at]`` (each with a kept choice) against ``ledger``, updating
    ``choices`` in place; a job with no free kept candidate gets row ``PER_JOB``. Returns, per
    entry of ``at``, whether its choice changed (it then counts as displaced)."""
    m = len(at)
    widths = [len(choices.starts[i]) for i in at.tolist()]  # type: ignore[arg-type]
    w_max, n_regions = max(widths), len(table.regions)
    scores = np.full((m, w_max, n_regions), np.inf)
    starts = np.zeros((m, w_max))
    span_a = np.zeros((m, w_max), dtype=np.int64)
    span_b = np.zeros((m, w_max), dtype=np.int64)
    for k, i in enumerate(at.tolist()):
        w, spans = widths[k], choices.spans[i]
        scores[k, :w] = choices.scores[i]
        starts[k, :w] = choices.starts[i]
        span_a[k, :w], span_b[k, :w] = spans  # type: ignore[misc]
    gpus = table.gpus[jobs[at]]
    levels, level_of = np.unique(np.maximum(gpus, 1), return_inverse=True)
    counts = np.stack([ledger.short_counts(int(g)) for g in levels])
    flat = counts.reshape(-1, n_regions)
    base = (level_of * counts.shape[1])[:, None]
    free = np.take(flat, base + span_b, axis=0) == np.take(flat, base + span_a, axis=0)
    free |= (gpus <= 0)[:, None, None]
    masked = np.where(free, scores, np.inf)
    best = masked.reshape(m, -1).min(axis=1)
    finite = np.isfinite(best)
    tied = masked <= (best + TIE_RTOL * np.maximum(1.0, np.abs(best)))[:, None, None]
    w_of = np.argmax(tied.any(axis=2), axis=1)
    idx = np.arange(m)
    at_w = tied[idx, w_of]
    home = table.home[jobs[at]]
    home_ok = (home >= 0) & at_w[idx, np.maximum(home, 0)]
    r_of = np.where(home_ok, home, np.argmax(at_w, axis=1))
    new_start = starts[idx, w_of]
    changed: BoolArray = ~finite | (r_of != choices.row[at]) | (new_start != choices.start_x[at])
    choices.row[at] = np.where(finite, r_of, PER_JOB)
    choices.start_x[at] = new_start
    choices.score[at] = masked[idx, w_of, r_of]
    choices.lo[at] = span_a[idx, w_of]
    choices.hi[at] = span_b[idx, w_of]
    return changed

"""The deadline repair's cover (``search.fewest_covering``) picks exactly what the plain
jobs x slots greedy picks, on random instances: its prefix sums are a speed-up, not a new
rule."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.planning.search import fewest_covering


def dense_greedy(
    short: np.ndarray, a0: np.ndarray, a1: np.ndarray, size: np.ndarray, need: np.ndarray, k: int
) -> list[int] | None:
    """The reference: every run's gift at every short slot as a matrix, summed per pick."""
    need = need.copy()
    gives = ((a0[:, None] <= short[None, :]) & (a1[:, None] > short[None, :])) * size[:, None]
    chosen: list[int] = []
    while need.max() > 0 and len(chosen) < k:
        gain = np.minimum(gives, np.maximum(need, 0)[None, :]).sum(axis=1)
        gain[chosen] = 0
        best = int(np.argmax(gain)) if gain.size else 0
        if not gain.size or gain[best] <= 0:
            return None
        chosen.append(best)
        need -= gives[best]
    return None if need.max() > 0 else chosen


@st.composite
def instances(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    n_slots = draw(st.integers(2, 48))
    short = np.array(
        sorted(draw(st.sets(st.integers(0, n_slots - 1), min_size=1, max_size=n_slots)))
    )
    runs = draw(st.integers(0, 30))
    a0 = np.array([float(draw(st.integers(-4, n_slots))) for _ in range(runs)])
    a1 = a0 + np.array([float(draw(st.integers(1, 24))) for _ in range(runs)])
    sizes = draw(st.sampled_from([(1.0, 2.0, 4.0, 8.0), (0.25, 0.5, 1.0)]))
    size = np.array([draw(st.sampled_from(sizes)) for _ in range(runs)])
    need = np.array([float(draw(st.integers(1, 8))) for _ in range(len(short))])
    return short, a0, a1, size, need, np.array(draw(st.integers(1, 6)))


@settings(max_examples=400, deadline=None)
@given(instances())
def test_fewest_covering_picks_what_the_dense_greedy_picks(case: tuple[np.ndarray, ...]) -> None:
    short, a0, a1, size, need, k = case
    before = need.copy()
    picked = fewest_covering(short, a0, a1, size, need, int(k))
    assert picked == dense_greedy(short, a0, a1, size, need, int(k))
    assert np.array_equal(need, before)  # the caller's need is left as it was
    if picked is not None:  # and the pick really covers every short slot
        covered = np.zeros(len(short))
        for i in picked:
            covered += ((a0[i] <= short) & (a1[i] > short)) * size[i]
        assert (covered >= need).all()
        assert len(picked) <= int(k)

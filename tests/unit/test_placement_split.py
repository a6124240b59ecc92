"""Interruptible chunks: the one-pass ranking equals re-ranking after every chunk."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.planning.split import chunk_lengths, lowest_chunks


def reference_chunks(
    price: np.ndarray, usable: np.ndarray, lengths: list[int]
) -> list[tuple[int, int]] | None:
    """Each chunk in turn at the first cheapest free stretch left (the definition)."""
    taken = ~usable.copy()
    prefix = np.concatenate(([0.0], np.cumsum(np.where(usable, price, 0.0))))
    chosen = []
    for length in lengths:
        best: tuple[float, int] | None = None
        for a in range(len(price) - length + 1):
            if taken[a : a + length].any():
                continue
            cost = float(prefix[a + length] - prefix[a])
            if best is None or cost < best[0]:
                best = (cost, a)
        if best is None:
            return None
        chosen.append((best[1], best[1] + length))
        taken[best[1] : best[1] + length] = True
    return sorted(chosen)


def test_one_slot_chunks_are_the_lowest_slots_ties_to_the_earliest() -> None:
    price = np.array([5.0, 1.0, 3.0, 1.0, 2.0, 9.0])
    usable = np.array([True, True, True, False, True, True])
    assert lowest_chunks(price, usable, [1, 1, 1]) == [(1, 2), (2, 3), (4, 5)]
    assert lowest_chunks(price, usable, [1] * 6) is None


def test_longer_chunks_do_not_overlap_and_take_the_cheapest_stretches() -> None:
    price = np.array([9.0, 1.0, 1.0, 1.0, 9.0, 2.0, 2.0, 9.0])
    usable = np.ones(8, dtype=bool)
    # Best pair 1-3 (sum 2), then 5-7 (4) since 2-4 and 3-5 overlap the first.
    assert lowest_chunks(price, usable, [2, 2]) == [(1, 3), (5, 7)]
    assert lowest_chunks(price, usable, [3, 2]) == [(1, 4), (5, 7)]


@settings(max_examples=300, deadline=None)
@given(
    prices=st.lists(st.integers(0, 4), min_size=1, max_size=40),
    blocked=st.lists(st.booleans(), min_size=40, max_size=40),
    need=st.integers(1, 45),
    min_chunk=st.integers(1, 4),
)
def test_matches_the_definition(
    prices: list[int], blocked: list[bool], need: int, min_chunk: int
) -> None:
    price = np.array(prices, dtype=np.float64)
    usable = ~np.array(blocked[: len(prices)])
    lengths = chunk_lengths(need, min_chunk)
    assert lowest_chunks(price, usable, lengths) == reference_chunks(price, usable, lengths)

"""The batched greedy (block choices + the compiled commit loop + choosing ahead on a thread)
places every job exactly where the one-by-one greedy does."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.planning import placement
from scheduler.planning.cycle import planning_inputs
from scheduler.planning.placement import Assignment, Placer
from scheduler.planning.policies import current_plans
from scheduler.planning.snapshot import Snapshot
from tests.fakes.planning import job, snapshot

HOURS = 36


@st.composite
def contended(draw: st.DrawFn) -> Snapshot:
    """Many jobs over few GPUs, 5-minute slots under hourly prices (so starts tie and herd)."""
    names = ("a", "b", "c")[: draw(st.integers(1, 3))]
    prices = {
        n: draw(st.lists(st.integers(50, 500), min_size=HOURS, max_size=HOURS)) for n in names
    }
    jobs = [
        job(
            f"j{i:03d}",
            duration_h=draw(st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.5, 6.0])),
            deadline_h=draw(st.integers(7, 30)),
            gpus=draw(st.integers(0, 4)),
            home=draw(st.sampled_from(names)),
            power_w=draw(st.sampled_from([300.0, 1200.0])),
            earliest_h=draw(st.sampled_from([0.0, 0.0, 1.0])),
        )
        for i in range(draw(st.integers(5, 60)))
    ]
    return snapshot(
        jobs,
        prices,
        gpus={n: draw(st.integers(2, 8)) for n in names},
        step_s=300,
    )


def one_by_one(snap: Snapshot) -> Assignment:
    table, books, ledger = planning_inputs(snap)
    placer = Placer(table, books, current_plans(table, table.grid), ledger.copy())
    a = Assignment.empty(len(table))
    for j in table.order():
        placer.place(a, int(j))
    return a


def batched(snap: Snapshot) -> tuple[Assignment, np.ndarray]:
    table, books, ledger = planning_inputs(snap)
    placer = Placer(table, books, current_plans(table, table.grid), ledger.copy())
    a = Assignment.empty(len(table))
    placer.place_all(a, table.order())
    return a, placer.ledger.free


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 2 to 8 jobs, so a few dozen jobs span many blocks and choose ahead."""
    monkeypatch.setattr(placement, "BLOCK_START", 2)
    monkeypatch.setattr(placement, "BLOCK_MAX", 8)


@pytest.mark.usefixtures("small_blocks")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contended())
def test_batched_greedy_is_the_one_by_one_greedy(snap: Snapshot) -> None:
    expected = one_by_one(snap)
    got, free = batched(snap)
    assert got.row.tolist() == expected.row.tolist()
    assert np.allclose(got.start_x, expected.start_x)
    assert np.allclose(got.score, expected.score, equal_nan=True)
    assert got.late == expected.late
    # The ledger the batched greedy leaves is exactly the capacity the placement uses.
    table, _, base = planning_inputs(snap)
    rebuilt = base.copy()
    for j in range(len(table)):
        if got.row[j] < 0:
            continue
        rebuilt.take(int(got.row[j]), float(got.start_x[j]), float(table.d[j]), int(table.gpus[j]))
    assert (rebuilt.free == free).all()


@pytest.mark.usefixtures("small_blocks")
def test_herding_jobs_are_pushed_in_order_and_match() -> None:
    """Forty jobs all wanting hour 5 of region a, two GPUs there: most are displaced."""
    prices = {"a": [400] * 5 + [50] + [400] * 30, "b": [300] * 36}
    jobs = [
        job(f"j{i:02d}", duration_h=1.0, deadline_h=30, gpus=1 + i % 2, home="a") for i in range(40)
    ]
    snap = snapshot(jobs, prices, gpus={"a": 2, "b": 3}, step_s=300)
    expected = one_by_one(snap)
    got, _ = batched(snap)
    assert len(got.displaced) > 30
    assert got.row.tolist() == expected.row.tolist()
    assert np.allclose(got.start_x, expected.start_x)


def test_blocks_cover_the_order_once_and_grow() -> None:
    order = np.arange(10_000)
    blocks = placement._blocks(order)
    assert np.array_equal(np.concatenate(blocks), order)
    sizes = [len(b) for b in blocks]
    assert sizes[0] == placement.BLOCK_START
    assert max(sizes) == placement.BLOCK_MAX
    assert all(b <= 2 * a for a, b in itertools.pairwise(sizes))

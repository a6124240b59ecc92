"""The scheduler's estimate intervals for runs nothing meters (Ray Serve applications): the next
interval from the last covered end, ``now`` and the run's end; consecutive, never overlapping,
on a grid from the run's start, and a final one up to the end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.domain.energy import MAX_INTERVAL_S, MeterMethod
from scheduler.planning.estimate_intervals import (
    EstimateStep,
    estimate_reports,
    next_estimate_step,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_nothing_is_due_before_a_whole_interval() -> None:
    assert (
        next_estimate_step(
            run_start=T0, covered_until=None, now=at(29.9), ended_at=None, interval_s=30
        )
        is None
    )


def test_the_first_interval_starts_at_the_run_and_ends_on_the_grid() -> None:
    step = next_estimate_step(
        run_start=T0, covered_until=None, now=at(75), ended_at=None, interval_s=30
    )
    assert step == EstimateStep(start=T0, end=at(60), final=False)


def test_the_next_interval_starts_where_the_last_ended() -> None:
    step = next_estimate_step(
        run_start=T0, covered_until=at(60), now=at(95), ended_at=None, interval_s=30
    )
    assert step == EstimateStep(start=at(60), end=at(90), final=False)
    assert (
        next_estimate_step(
            run_start=T0, covered_until=at(90), now=at(95), ended_at=None, interval_s=30
        )
        is None
    )


def test_the_final_interval_ends_at_the_run_end_then_nothing() -> None:
    step = next_estimate_step(
        run_start=T0, covered_until=at(90), now=at(200), ended_at=at(104.5), interval_s=30
    )
    assert step == EstimateStep(start=at(90), end=at(104.5), final=True)
    assert (
        next_estimate_step(
            run_start=T0, covered_until=at(104.5), now=at(200), ended_at=at(104.5), interval_s=30
        )
        is None
    )


def test_a_long_gap_is_caught_up_in_intervals_of_at_most_a_day() -> None:
    step = next_estimate_step(
        run_start=T0, covered_until=None, now=at(3 * 86_400), ended_at=None, interval_s=30
    )
    assert step is not None
    assert step.end - step.start == timedelta(seconds=MAX_INTERVAL_S)
    final = next_estimate_step(
        run_start=T0, covered_until=None, now=at(3 * 86_400), ended_at=at(2 * 86_400), interval_s=30
    )
    assert final == EstimateStep(start=T0, end=at(MAX_INTERVAL_S), final=False)


def test_a_bad_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        next_estimate_step(run_start=T0, covered_until=None, now=at(1), ended_at=None, interval_s=0)


def test_reports_are_power_times_duration_per_device_flagged_estimate() -> None:
    step = EstimateStep(start=at(0), end=at(30), final=False)
    reports = estimate_reports(
        step,
        job_id="j",
        attempt=2,
        node="ray-serve:eu",
        power_w={"estimate:gpu": 75.0, "estimate:base": 20.0},
    )
    assert [(r.device, r.energy_j) for r in reports] == [
        ("estimate:base", 600.0),
        ("estimate:gpu", 2250.0),
    ]
    assert all(r.method is MeterMethod.ESTIMATE and r.attempt == 2 for r in reports)


@given(
    polls=st.lists(st.floats(min_value=0.0, max_value=200_000.0), min_size=1, max_size=40),
    end_s=st.one_of(st.none(), st.floats(min_value=0.0, max_value=250_000.0)),
    interval_s=st.sampled_from([1.0, 7.5, 30.0, 300.0]),
)
def test_any_poll_sequence_covers_the_run_without_gap_or_overlap(
    polls: list[float], end_s: float | None, interval_s: float
) -> None:
    """Whatever the times of the passes, the written intervals tile the run from its start;
    once it ended and enough passes came, up to its end exactly."""
    ended_at = None if end_s is None else at(end_s)
    covered: datetime | None = None
    steps: list[EstimateStep] = []
    times = sorted(polls) + [max([*polls, end_s or 0.0]) + 1.0] * 5  # passes after the end
    for now_s in times:
        step = next_estimate_step(
            run_start=T0,
            covered_until=covered,
            now=at(now_s),
            ended_at=ended_at,
            interval_s=interval_s,
        )
        if step is None:
            continue
        assert step.start == (covered or T0)  # no gap, no overlap
        assert step.end > step.start
        assert (step.end - step.start).total_seconds() <= MAX_INTERVAL_S
        if ended_at is None:
            assert step.end <= at(now_s)
        else:
            assert step.end <= ended_at
        steps.append(step)
        covered = step.end
    # Five passes after the end reach it when it is within five capped intervals.
    if ended_at is not None and T0 < ended_at <= at(5 * MAX_INTERVAL_S):
        assert covered == ended_at
        assert steps[-1].final

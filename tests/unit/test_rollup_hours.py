"""The rollup's hour arithmetic: which hours a report's range covers whole, and dirty hours as
ranges (``scheduler.store.rollup``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.store.rollup import RollupView, ceil_hour, floor_hour, hour_start

T = datetime(2026, 3, 1, 6, tzinfo=UTC)
H = int(T.timestamp()) // 3600


def test_whole_hours_of_a_range() -> None:
    assert floor_hour(T) == ceil_hour(T) == H
    assert hour_start(H) == T
    inside = T + timedelta(minutes=30)
    assert (floor_hour(inside), ceil_hour(inside)) == (H, H + 1)
    just_after = T + timedelta(microseconds=1)  # a partial hour is read raw, never rolled
    assert ceil_hour(just_after) == H + 1
    assert floor_hour(T - timedelta(microseconds=1)) == H - 1


def test_dirty_hours_become_ranges_and_conditions() -> None:
    view = RollupView(lo=H, hi=H + 10, dirty=(H + 1, H + 2, H + 3, H + 7), step_s=300.0)
    assert view.ranges() == [(H + 1, H + 4), (H + 7, H + 8)]
    assert RollupView(lo=H, hi=H + 1, dirty=(), step_s=300.0).ranges() == []
    # raw: unfinished jobs, outside [lo, hi), and each dirty range
    assert len(view.raw_condition().clauses) == 4 + 2  # type: ignore[attr-defined]

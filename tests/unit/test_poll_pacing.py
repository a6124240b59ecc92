"""How often reconcile asks about one run: fast while it is young, then a tenth of its age."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from scheduler.service.poll_pacing import FAST_S, MAX_S, SLACK_S, PollPacer


def asked_at(pacer: PollPacer, run: str, ticks_s: list[float]) -> list[float]:
    """The ticks (the reconcile loop's) at which ``run`` was asked about."""
    out = []
    for t in ticks_s:
        if pacer.due(run, t):
            pacer.asked(run, t)
            out.append(t)
    return out


def test_a_young_run_is_asked_about_at_every_tick_of_the_loop() -> None:
    ticks = [i * FAST_S for i in range(11)]  # its first 5 s
    assert asked_at(PollPacer(), "j-1", ticks) == ticks


def test_an_old_run_is_asked_about_every_tenth_of_its_age_up_to_the_cap() -> None:
    pacer = PollPacer()
    ticks = [i * FAST_S for i in range(int(3600 / FAST_S))]  # an hour of ticks
    asked = asked_at(pacer, "j-1", ticks)
    gaps = {round(b - a, 1): b for a, b in itertools.pairwise(asked)}
    assert max(gaps) == MAX_S  # capped
    around_100_s = [b - a for a, b in itertools.pairwise(asked) if 95 <= a <= 105]
    assert all(9.5 <= g <= 11.0 for g in around_100_s), around_100_s
    assert len(asked) < 300  # the hour cost 7,200 questions at every tick


def test_a_retry_is_a_new_run_and_starts_young() -> None:
    pacer = PollPacer()
    asked_at(pacer, "j-1-1", [i * FAST_S for i in range(400)])  # 200 s old
    later = 200.0
    assert not pacer.due("j-1-1", later)
    assert pacer.due("j-1-2", later)


def test_runs_no_longer_started_are_forgotten() -> None:
    pacer = PollPacer()
    asked_at(pacer, "j-1-1", [0.0, 60.0])
    pacer.keep_only(["j-2-1"])
    assert pacer.due("j-1-1", 60.1)  # seen afresh: young again


@given(st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=300))
def test_questions_keep_to_the_interval_whatever_the_ticks(gaps_s: list[float]) -> None:
    pacer = PollPacer()
    ticks = list(itertools.accumulate(gaps_s))
    asked = asked_at(pacer, "j", ticks)
    assert asked[0] == ticks[0]
    longest_gap_s = max(gaps_s[1:], default=0.0)
    for before, after in itertools.pairwise(asked):
        assert after - before >= pacer.interval_s(before - ticks[0]) - SLACK_S
        assert after - before <= pacer.interval_s(after - ticks[0]) + longest_gap_s
    # Nothing left waiting past its time at the last tick.
    assert ticks[-1] - asked[-1] < pacer.interval_s(ticks[-1] - ticks[0]) + longest_gap_s

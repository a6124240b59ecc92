"""A claim undone because Ray was unreachable (a ``release`` event) starts no attempt: the
energy window of the attempt is the one of the claim that reached the cluster."""

from __future__ import annotations

from datetime import datetime, timedelta

from scheduler.domain import JobState
from scheduler.service.energy import attempt_run
from tests.fakes.store import T0, make_event, make_job


def test_a_released_claim_does_not_start_an_attempt() -> None:
    def at(minutes: int) -> datetime:
        return T0 + timedelta(minutes=minutes)

    events = [
        make_event("j", at(0), to_state=JobState.PENDING),
        make_event("j", at(1), to_state=JobState.DISPATCHED),  # claim: attempt 1 ...
        make_event(
            "j", at(2), kind="release", from_state=JobState.DISPATCHED, to_state=JobState.RETRYING
        ),  # ... undone, Ray unreachable
        make_event("j", at(3), kind="plan", to_state=JobState.PLANNED),
        make_event("j", at(4), to_state=JobState.DISPATCHED),  # attempt 1 for real
        make_event("j", at(5), to_state=JobState.RUNNING),
        make_event("j", at(9), to_state=JobState.RETRYING),  # it failed
        make_event("j", at(10), to_state=JobState.DISPATCHED),  # attempt 2
        make_event("j", at(11), to_state=JobState.RUNNING),
        make_event("j", at(20), to_state=JobState.SUCCEEDED),
    ]
    job = make_job("j", state=JobState.SUCCEEDED, attempt=2, finished_at=at(20))
    first = attempt_run(job, events, 1)
    assert first is not None
    assert (first.started_at, first.ended_at) == (at(4), at(9))
    second = attempt_run(job, events, 2)
    assert second is not None
    assert (second.started_at, second.ended_at) == (at(10), at(20))

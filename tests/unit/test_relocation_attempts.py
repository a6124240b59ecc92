"""Attempts across a blue/green move: each copy is an attempt with its own run, so its token
and its energy reports are accepted exactly while it runs (``service.energy.attempt_run``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.domain import Job, JobEvent, JobKind, JobSpec, JobState
from scheduler.domain.deployments import (
    COPY_STOPPED,
    Move,
    MovePhase,
    copy_stopped_reason,
    serving_attempt,
    stopped_attempt,
)
from scheduler.service.energy import AttemptRun, attempt_run

T0 = datetime(2023, 3, 1, tzinfo=UTC)
SPEC = JobSpec(tenant="t", name="d", kind=JobKind.DEPLOYMENT, entrypoint="x", home_region="a")


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _state(minutes: int, to: JobState) -> JobEvent:
    return JobEvent(job_id="j", at=_at(minutes), kind="state", actor="s", reason="", to_state=to)


def _stopped(minutes: int, attempt: int) -> JobEvent:
    return JobEvent(
        job_id="j",
        at=_at(minutes),
        kind=COPY_STOPPED,
        actor="s",
        reason=copy_stopped_reason(attempt, "drained"),
    )


def _job(state: JobState, attempt: int, submission: int, *, moving: bool = False) -> Job:
    move = None
    if moving:
        move = Move(
            phase=MovePhase.STARTING,
            from_region="a",
            to_region="b",
            old_attempt=submission,
            old_submission_id=f"j-{submission}",
            new_attempt=attempt,
            new_submission_id=f"j-{attempt}",
            started_at=_at(20),
            health_deadline=_at(30),
            expected_saving_g=1.0,
            expected_saving_pct=1.0,
            stay_g=2.0,
            move_g=1.0,
            horizon_s=3600.0,
        )
    return Job(
        id="j",
        spec=SPEC,
        state=state,
        created_at=T0,
        updated_at=_at(40),
        attempt=attempt,
        submission_id=f"j-{submission}",
        move=move,
    )


BEFORE = [
    _state(0, JobState.PENDING),
    _state(1, JobState.DISPATCHED),
    _state(2, JobState.RUNNING),
    _state(20, JobState.RELOCATING),  # the move's new copy: attempt 2
]


def test_both_copies_run_during_a_move() -> None:
    job = _job(JobState.RELOCATING, 2, 1, moving=True)
    assert attempt_run(job, BEFORE, 1) == AttemptRun(started_at=_at(1), ended_at=None)
    assert attempt_run(job, BEFORE, 2) == AttemptRun(started_at=_at(20), ended_at=None)
    assert attempt_run(job, BEFORE, 3) is None


def test_after_a_move_the_old_copy_ends_when_it_is_stopped() -> None:
    events = [*BEFORE, _stopped(25, 1), _state(25, JobState.RUNNING)]
    job = _job(JobState.RUNNING, 2, 2)
    assert attempt_run(job, events, 1) == AttemptRun(started_at=_at(1), ended_at=_at(25))
    assert attempt_run(job, events, 2) == AttemptRun(started_at=_at(20), ended_at=None)


def test_after_a_rollback_the_old_copy_serves_on_and_the_new_one_ended() -> None:
    events = [*BEFORE, _stopped(30, 2), _state(30, JobState.RUNNING)]
    job = _job(JobState.RUNNING, 2, 1)  # the attempt count ran ahead of the serving copy
    assert serving_attempt(job.submission_id, job.attempt) == 1
    assert attempt_run(job, events, 1) == AttemptRun(started_at=_at(1), ended_at=None)
    assert attempt_run(job, events, 2) == AttemptRun(started_at=_at(20), ended_at=_at(30))


def test_a_later_move_and_a_retry_keep_counting_attempts() -> None:
    events = [
        *BEFORE,
        _stopped(25, 1),
        _state(25, JobState.RUNNING),
        _state(60, JobState.RETRYING),  # the new copy failed later: a retry, attempt 3
        _state(61, JobState.DISPATCHED),
    ]
    job = _job(JobState.DISPATCHED, 3, 3)
    assert attempt_run(job, events, 2) == AttemptRun(started_at=_at(20), ended_at=_at(60))
    assert attempt_run(job, events, 3) == AttemptRun(started_at=_at(61), ended_at=None)


def test_copy_stopped_events_name_their_attempt() -> None:
    assert stopped_attempt(COPY_STOPPED, copy_stopped_reason(12, "why")) == 12
    assert stopped_attempt("state", copy_stopped_reason(12, "why")) is None
    assert stopped_attempt(COPY_STOPPED, "something else") is None
    assert serving_attempt("j-abc-7", 9) == 7
    assert serving_attempt(None, 9) == 9

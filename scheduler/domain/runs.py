"""What a cluster says about one submitted run."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from scheduler.domain.jobs import JobState


class RunStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    UNKNOWN = "unknown"  # the cluster has no run with that submission id


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    status: RunStatus
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchMark:
    """A job's dispatch bookkeeping: its current ``attempt``; which attempt's submit a replica
    has taken, and when (a lease); which attempt's dispatch is recorded, and when; and why the
    job is in quarantine (None when it is not)."""

    attempt: int
    submit_attempt: int | None = None
    submit_taken_at: datetime | None = None
    dispatched_attempt: int | None = None
    dispatched_at: datetime | None = None
    quarantine: str | None = None

    @property
    def recorded(self) -> bool:
        """Whether the current attempt's dispatch is recorded (it reached the cluster)."""
        return self.dispatched_attempt is not None and self.dispatched_attempt >= self.attempt


@dataclass(frozen=True, slots=True, kw_only=True)
class StartedRun:
    """A started job as reconcile first reads it: enough to tell whether to ask the cluster
    about it this pass (its state, where and as what it was submitted, whether it is a Serve
    application), the GPUs it holds, and its dispatch bookkeeping. Read for every started job
    each pass; the full row only for the runs it asks about."""

    job_id: str
    state: JobState
    region: str | None
    submission_id: str | None
    serve: bool
    gpus: float  # whole GPUs, or a deployment's share of one
    mark: DispatchMark

"""Jobs, their states and the plan chosen for them.

All datetimes are timezone-aware UTC. Durations are seconds, power watts, emissions grams CO2e.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scheduler.domain.deployments import Move, Relocation
from scheduler.domain.serve import ServeApp


class JobKind(enum.StrEnum):
    TRAINING = "training"
    DEPLOYMENT = "deployment"


class JobState(enum.StrEnum):
    PENDING = "pending"
    PLANNED = "planned"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRYING = "retrying"
    RELOCATING = "relocating"
    # An interruptible job between two of its windows: checkpointed, waiting for the next one.
    SUSPENDED = "suspended"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def started(self) -> bool:
        """Whether the job holds (or may hold) cluster resources right now."""
        return self in {JobState.DISPATCHED, JobState.RUNNING, JobState.RELOCATING}


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
# Every other state, in the order a queue is shown (waiting, then on the cluster, then between).
LIVE_STATES = (
    JobState.PENDING,
    JobState.PLANNED,
    JobState.DISPATCHED,
    JobState.RUNNING,
    JobState.RETRYING,
    JobState.SUSPENDED,
    JobState.RELOCATING,
)

# Every allowed edge. Anything else is an InvalidTransition: a state never goes backwards silently.
ALLOWED_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset(
        {JobState.PLANNED, JobState.DISPATCHED, JobState.CANCELLED, JobState.FAILED}
    ),
    JobState.PLANNED: frozenset(
        {
            JobState.PLANNED,
            JobState.PENDING,
            JobState.DISPATCHED,
            JobState.CANCELLED,
            JobState.FAILED,
        }
    ),
    JobState.DISPATCHED: frozenset(
        {
            JobState.RUNNING,
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.RETRYING,
            JobState.SUSPENDED,
        }
    ),
    JobState.RUNNING: frozenset(
        {
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.RETRYING,
            JobState.RELOCATING,
            JobState.SUSPENDED,
        }
    ),
    JobState.RETRYING: frozenset(
        {
            JobState.PLANNED,
            JobState.PENDING,
            JobState.DISPATCHED,
            JobState.CANCELLED,
            JobState.FAILED,
        }
    ),
    JobState.SUSPENDED: frozenset(
        {
            JobState.PLANNED,
            JobState.PENDING,
            JobState.DISPATCHED,
            JobState.CANCELLED,
            JobState.FAILED,
        }
    ),
    JobState.RELOCATING: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

# States the planner may (re)place: not started, not finished.
PLANNABLE_STATES = frozenset(
    {JobState.PENDING, JobState.PLANNED, JobState.RETRYING, JobState.SUSPENDED}
)


def can_transition(current: JobState, target: JobState) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


class Policy(enum.StrEnum):
    """How a job is placed. ``oracle`` plans on actuals and exists only in simulation."""

    NOW = "now"
    LOWEST_WINDOW = "lowest-window"
    CARBON_TIME = "carbon-time"
    WAIT_AWHILE = "wait-awhile"
    GREENLIGHT = "greenlight"
    ORACLE = "oracle"


class DependencyKind(enum.StrEnum):
    """Slurm's names: ``afterok`` waits for the parent to succeed (a parent that fails or is
    cancelled cancels the child), ``afterany`` for it to finish in any way."""

    AFTEROK = "afterok"
    AFTERANY = "afterany"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependency:
    """The job may start only after job ``job_id`` has ended (as ``kind`` says)."""

    job_id: str
    kind: DependencyKind = DependencyKind.AFTEROK


@dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    """``gpus`` is whole GPUs, or for a deployment a share of one GPU (0.25: a quarter), in
    multiples of 1/10,000 (Ray's granularity); a count above one must be whole."""

    gpus: float = 0
    cpus: float = 1.0
    memory_mb: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """What a tenant asks for. Validated by ``scheduler.planning.validation`` at submit."""

    tenant: str
    name: str
    kind: JobKind
    entrypoint: str
    home_region: str
    runtime_env: Mapping[str, Any] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    expected_duration_s: float | None = None
    deadline: datetime | None = None
    max_delay_s: float | None = None
    allowed_regions: tuple[str, ...] = ()
    interruptible: bool = False
    priority: int = 0
    max_retries: int = 0
    policy: Policy = Policy.GREENLIGHT
    # Expected mean draw while running, for planning; None means "derive from resources".
    expected_power_w: float | None = None
    # Jobs of one array or sweep share it; list, cancel and the savings report filter on it.
    group_id: str | None = None
    # Jobs this one runs after (planned as precedence: it starts after their planned ends).
    after: tuple[Dependency, ...] = ()
    # A deployment run as a Ray Serve application (scheduler.dispatch.ray_serve), not a process.
    serve: ServeApp | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """One contiguous run interval in one region. ``end`` is exclusive."""

    region: str
    start: datetime
    end: datetime

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Where and when a not-yet-started job will run, and what the planner expected it to emit.

    ``windows`` has one element except for interruptible jobs split across several windows.
    ``forecast_emissions_g`` is on the forecast used; ``baseline_emissions_g`` is the same job
    started at submit time in its home region, priced on the same forecast data.
    """

    region: str
    windows: tuple[Window, ...]
    policy: Policy
    planned_at: datetime
    forecast_emissions_g: float
    baseline_emissions_g: float
    forecast_issued_at: datetime | None = None
    # Why the plan is what it is when it is not a plain forecast optimum (fallback, forced start).
    note: str | None = None

    @property
    def start(self) -> datetime:
        return self.windows[0].start

    @property
    def end(self) -> datetime:
        return self.windows[-1].end


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A submitted job as stored. ``attempt`` counts dispatches (0 = never dispatched)."""

    id: str
    spec: JobSpec
    state: JobState
    created_at: datetime
    updated_at: datetime
    attempt: int = 0
    plan: Plan | None = None
    region: str | None = None  # where it was dispatched
    submission_id: str | None = None  # the Ray submission id of the current attempt
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    message: str | None = None
    # Deployments (scheduler.domain.deployments): where the serving copy answers and since when,
    # the move in flight, when it last moved, and its completed moves, oldest first.
    endpoint: str | None = None
    endpoint_updated_at: datetime | None = None
    move: Move | None = None
    moved_at: datetime | None = None
    relocations: tuple[Relocation, ...] = ()
    move_attempts: int = 0  # attempts its moves used: they are not retries

    @property
    def tenant(self) -> str:
        return self.spec.tenant

    @property
    def kind(self) -> JobKind:
        return self.spec.kind

    def latest_start(self) -> datetime | None:
        """The last start that still meets the deadline, or None for open-ended jobs."""
        deadline = effective_deadline(self.spec, self.created_at)
        if deadline is None or self.spec.expected_duration_s is None:
            return None
        return deadline - timedelta(seconds=self.spec.expected_duration_s)


def effective_deadline(spec: JobSpec, submitted_at: datetime) -> datetime | None:
    """``deadline`` if given, else submit time + ``max_delay_s`` + duration, else None."""
    if spec.deadline is not None:
        return spec.deadline
    if spec.max_delay_s is not None and spec.expected_duration_s is not None:
        return submitted_at + timedelta(seconds=spec.max_delay_s + spec.expected_duration_s)
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobEvent:
    """One row of a job's history: a state change or a notable planning/dispatch fact."""

    job_id: str
    at: datetime
    kind: str  # "state", "plan", "fallback", "dispatch", "warning", "energy"
    actor: str  # "api:<tenant>", "scheduler", "worker", "ray"
    reason: str
    from_state: JobState | None = None
    to_state: JobState | None = None
    expected_emissions_g: float | None = None
    id: int | None = None

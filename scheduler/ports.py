"""Protocols the service depends on. Adapters implement them; only bootstrap wires them.

Every datetime crossing a port is timezone-aware UTC. Adapters return domain objects and raise
domain errors: ORM rows, vendor JSON and Ray objects never cross.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from scheduler.domain import (
    ApiToken,
    EnergyReport,
    Forecast,
    Job,
    JobEvent,
    JobKind,
    JobState,
    Plan,
    Region,
    SeriesKind,
)
from scheduler.domain.deployments import Move, Relocation
from scheduler.domain.progress import JobProgress
from scheduler.domain.runs import DispatchMark, RunInfo, StartedRun
from scheduler.domain.savings import EnergyBucket, JobCount, RunBounds
from scheduler.domain.serve import ServeApp
from scheduler.domain.submission import PendingJob


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, aware UTC."""
        ...

    def from_wall(self, wall: datetime) -> datetime:
        """Map a wall-clock instant (a worker's timestamp) into this clock's time."""
        ...


class JobStore(Protocol):
    """Durable queue of jobs and their history. The store, not the process, is the truth."""

    def add_job(self, job: Job, event: JobEvent) -> None:
        """Insert a new job with its first event, atomically."""
        ...

    def add_jobs(self, new: Sequence[tuple[Job, JobEvent]]) -> None:
        """Insert jobs with their first events in one transaction (bulk): all or none."""
        ...

    def add_pending(
        self, new: Sequence[PendingJob], *, now: datetime, actor: str, reason: str
    ) -> None:
        """Insert just-submitted jobs (pending since ``now``) each with its first state event,
        in one transaction (bulk): all or none."""
        ...

    def get_job(self, job_id: str) -> Job:
        """Raises JobNotFound."""
        ...

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The jobs found among ``job_ids``, by id."""
        ...

    def list_jobs(
        self,
        *,
        states: Collection[JobState] | None = None,
        tenant: str | None = None,
        kind: JobKind | None = None,
        limit: int = 100,
        offset: int = 0,
        group_id: str | None = None,
        after: tuple[datetime, str] | None = None,
        count: bool = True,
        count_limit: int | None = None,
    ) -> tuple[list[Job], int | None]:
        """Jobs matching every given filter, newest first (ties by id), and the total count
        before paging (None unless ``count``). ``after``: keyset position ``(created_at, id)``
        of the previous page's last job."""
        ...

    def cancel_queued(
        self,
        *,
        group_id: str,
        tenant: str | None,
        now: datetime,
        actor: str,
        reason: str,
    ) -> list[str]:
        """Cancel a group's jobs that have not started, in one transaction; the ids."""
        ...

    def prune_events(self, finished_before: datetime) -> int:
        """Delete the events of jobs finished before ``finished_before``; how many went."""
        ...

    def transition(
        self,
        job_id: str,
        target: JobState,
        event: JobEvent,
        *,
        expected_from: Collection[JobState] | None = None,
        region: str | None = None,
        submission_id: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        exit_code: int | None = None,
        message: str | None = None,
        clear_plan: bool = False,
    ) -> Job:
        """Atomically move a job to ``target`` (if the edge is allowed and, when given, its
        current state is in ``expected_from``), set the given fields and append ``event``.

        A conditional UPDATE: two callers racing on one job cannot both win. Raises JobNotFound
        or InvalidTransition.
        """
        ...

    def save_plan(self, job_id: str, plan: Plan, event: JobEvent | None) -> bool:
        """Store ``plan`` and set the state to planned, only if the job is still plannable
        (pending, planned, retrying, suspended). Returns False when it no longer is."""
        ...

    def claim_due(self, now: datetime, limit: int) -> list[Job]:
        """Atomically take planned jobs whose plan starts at or before ``now``: each becomes
        dispatched with ``attempt += 1``, ``region = plan.region`` and
        ``submission_id = f"{id}-{attempt}"``, with an event. No job is claimed twice, even by
        concurrent replicas (SQLite BEGIN IMMEDIATE; PostgreSQL FOR UPDATE SKIP LOCKED)."""
        ...

    def add_event(self, event: JobEvent) -> None: ...

    def events(self, job_id: str) -> list[JobEvent]:
        """Oldest first. Raises JobNotFound."""
        ...

    def events_of(
        self, job_ids: Collection[str], kinds: Collection[str], *, limit: int
    ) -> list[JobEvent]:
        """The newest ``limit`` events of ``kinds`` among ``job_ids``, newest first, in one
        read (``scheduler.store.event_reads``)."""
        ...


@dataclass(frozen=True, slots=True)
class PlanningChanges:
    """What changed in the plannable queue since a time, read from one snapshot
    (``PlanStore.planning_changes``)."""

    gone: list[str]  # changed and no longer plannable (or in quarantine)
    jobs: list[Job]  # changed and plannable, not already current in the caller's table
    count: int  # every plannable job not in quarantine, in that snapshot


@dataclass(frozen=True, slots=True)
class Holding:
    """What a started job holds, as the plan cycle's occupancy needs it
    (``PlanStore.holdings``): GPUs (a share of one below 1) in a region from ``started_at``
    (None: not started yet) for ``expected_duration_s`` (None: open-ended)."""

    region: str | None
    gpus: float
    started_at: datetime | None
    kind: JobKind
    expected_duration_s: float | None


class PlanStore(Protocol):
    """The cycles' bulk reads and writes, quarantine and the once-only dispatch record
    (``scheduler.store.plans``). Times are aware UTC; ``lease_s`` is seconds."""

    def planning_jobs(self, job_ids: Sequence[str] | None = None) -> list[Job]:
        """Plannable jobs not in quarantine (of ``job_ids`` when given), as the plan cycle
        reads them: specs without entrypoint, name and runtime_env, and no run, submission,
        endpoint or move fields (unset)."""
        ...

    def planning_changes(
        self, since: datetime, current: Callable[[str, datetime, JobState], bool]
    ) -> PlanningChanges:
        """Jobs updated at or after ``since`` that left the plannable states (or went into
        quarantine), the changed plannable ones ``current(id, updated_at, state)`` rejects, and
        how many plannable jobs there are: all from one snapshot."""
        ...

    def holdings(self, states: Collection[JobState]) -> list[Holding]:
        """What every job in ``states`` holds: five columns a job, not the whole row (the
        plan cycle reads every started job, thousands, every cycle)."""
        ...

    def save_plans(self, plans: Sequence[tuple[str, Plan, Sequence[JobEvent]]]) -> set[str]:
        """Store the plans (and events, the state change first) of jobs still plannable, in
        one transaction; the ids saved."""
        ...

    def quarantine_job(self, job_id: str, reason: str, event: JobEvent) -> bool:
        """Set a job aside from every cycle, with ``event``; False if already set aside."""
        ...

    def dispatch_marks(self, job_ids: Sequence[str]) -> dict[str, DispatchMark]: ...

    def started_runs(self, states: Collection[JobState]) -> list[StartedRun]:
        """Every job in ``states``, a few short columns and its dispatch bookkeeping each."""
        ...

    def take_submit(self, job_id: str, attempt: int, now: datetime, lease_s: float) -> bool:
        """Take the lease on submitting ``attempt``; exactly one concurrent caller wins."""
        ...

    def record_dispatch(self, job_id: str, attempt: int, event: JobEvent) -> bool:
        """Record the attempt's dispatch and its event, once; True for the one that did."""
        ...

    def release_claim(self, job_id: str, attempt: int, event: JobEvent) -> bool:
        """Return an unsubmitted attempt to retrying with ``attempt - 1`` (no retry used)."""
        ...


class EnergyStore(Protocol):
    def add_energy_reports(self, reports: Sequence[EnergyReport]) -> int:
        """Insert reports atomically; exact repeats by (job_id, attempt, device,
        interval_start) are ignored. Returns how many were new. Raises EnergyConflict (storing
        nothing) for the same key with other figures or an interval overlapping a stored one
        of the same job, attempt and device."""
        ...

    def energy_reports(self, job_ids: Collection[str] | None = None) -> list[EnergyReport]:
        """Reports for the given jobs (all when None), ordered by interval_start."""
        ...


class ForecastStore(Protocol):
    """Append-only store of every series fetched, so plans can be audited and replayed."""

    def append_forecast(self, forecast: Forecast) -> None: ...

    def latest_forecast(
        self,
        zone: str,
        as_of: datetime,
        kind: SeriesKind = SeriesKind.FORECAST,
        *,
        provider: str | None = None,
    ) -> Forecast | None:
        """The series of ``kind`` for ``zone`` with the greatest ``issued_at <= as_of``.
        Series are keyed by (zone, provider): a region passes its ``provider``."""
        ...

    def actuals(
        self,
        zone: str,
        start: datetime,
        end: datetime,
        *,
        provider: str | None = None,
    ) -> Forecast | None:
        """Actual points valid in ``[start, end)``, merged over every stored actual series (the
        latest issue wins for a given ``valid_at``); None when there are none."""
        ...

    def forecasts_between(
        self,
        zone: str,
        start: datetime,
        end: datetime,
        *,
        provider: str | None = None,
    ) -> list[Forecast]:
        """Every forecast for ``zone`` issued in ``[start, end)``, oldest first."""
        ...

    def prune_forecasts(self, before: datetime) -> int:
        """Delete series issued before ``before``; returns how many series went."""
        ...


class TokenStore(Protocol):
    def add_token(self, token: ApiToken) -> None: ...

    def token_by_hash(self, token_hash: str) -> ApiToken | None: ...

    def revoke_token(self, token_id: str) -> None: ...

    def get_token(self, token_id: str) -> ApiToken | None: ...

    def consume_token(self, token_id: str, now: datetime) -> bool:
        """Revoke a live token atomically: True for the one caller that did (one-time use)."""
        ...

    def revoke_attempt_tokens(self, job_id: str, attempt: int | None) -> int: ...

    def runners_started(self, attempts: Mapping[str, int]) -> set[str]:
        """Jobs (id -> attempt) whose runner has exchanged that attempt's credential."""
        ...

    def list_tokens(self, tenant: str | None = None) -> list[ApiToken]: ...


class RegionStore(Protocol):
    def sync_regions(self, regions: Sequence[Region]) -> None:
        """Make the stored regions equal to ``regions`` (configuration is their source)."""
        ...

    def list_regions(self) -> list[Region]: ...


class ForecastProvider(Protocol):
    """One carbon-intensity source. Raises ProviderError for any fault; never returns garbage."""

    name: str

    def forecast(self, zone: str, now: datetime) -> Forecast:
        """The provider's current forecast for ``zone`` as of ``now``."""
        ...

    def actuals(self, zone: str, start: datetime, end: datetime) -> Forecast:
        """Measured intensity for ``zone`` in ``[start, end)``."""
        ...


class Dispatcher(Protocol):
    """Runs jobs on a region's cluster. Submissions are idempotent by submission id."""

    def submit(
        self,
        region: Region,
        submission_id: str,
        entrypoint: str,
        *,
        env: Mapping[str, str],
        gpus: float,
        cpus: float,
        memory_mb: int,
        working_dir: str | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        serve: ServeApp | None = None,
    ) -> None:
        """Start ``entrypoint`` (with ``serve``: deploy that Ray Serve application instead);
        a submission id the cluster already knows is not run again.
        ``runtime_env`` is the job's Ray runtime env (pip, conda, py_modules, ...); ``env`` is
        merged into its env_vars; ``gpus`` may be a deployment's share of one GPU (0.25).
        Raises DispatchError."""
        ...

    def status(self, region: Region, submission_id: str) -> RunInfo:
        """RunStatus.UNKNOWN when the cluster has no such submission. Raises DispatchError."""
        ...

    def logs(self, region: Region, submission_id: str) -> str: ...

    def stop(self, region: Region, submission_id: str) -> bool:
        """Ask the run to stop; True if it was running."""
        ...


class SavingsStore(Protocol):
    """The savings report's sums, by the database (``scheduler.store.savings``). Filters: the
    tenant, the region a job ran in, its group, its start time in ``[start, end)``."""

    def savings_job_counts(
        self,
        *,
        tenant: str | None = None,
        region: str | None = None,
        group_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        split: str | None = None,
        now: datetime | None = None,
        step_s: float = 300.0,
    ) -> list[JobCount]:
        """Counted jobs (started; finished or running) per tenant, region and start day (and
        ``split``: ``kind`` or ``group``), with the sums ``JobCount`` lists; a running job's
        run time ends at ``now`` (0 s without one), moved in time means started more than
        ``step_s`` after submit."""
        ...

    def savings_energy_buckets(
        self,
        *,
        tenant: str | None = None,
        region: str | None = None,
        group_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        split: str | None = None,
    ) -> list[EnergyBucket]:
        """Their energy per hour drawn and per hour it would have been drawn at home (and per
        ``split``: ``kind`` or ``group``)."""
        ...

    def savings_shared_runs(
        self, *, tenant: str | None = None, region: str | None = None, group_id: str | None = None
    ) -> list[RunBounds]:
        """The counted jobs holding a share of one GPU that drew energy, with their run bounds
        (the packing credit; not bounded by start time)."""
        ...

    def refresh_savings_rollup(self, now: datetime, step_s: float) -> object:
        """Bring the hourly rollup the two sums read up to date (``scheduler.store.rollup``);
        the sums are the same with or without it, only faster."""
        ...


class ProgressStore(Protocol):
    """Each job's functional-unit total (``scheduler.store.progress``)."""

    def record_progress(self, progress: JobProgress) -> bool:
        """Store it if it supersedes the stored total (True), False for a repeat. Raises
        JobNotFound, ProgressConflict (a lower total of the attempt, an older attempt)."""
        ...

    def job_progress(self, job_ids: Collection[str]) -> dict[str, JobProgress]:
        """The stored totals of those jobs that have one, by job id."""
        ...


class DeploymentStore(Protocol):
    """Deployments' endpoints and their moves between regions (``scheduler.store.deployments``).
    Times are aware UTC. Every write checks what it expects and returns False when the job
    changed meanwhile."""

    def set_endpoint(self, job_id: str, attempt: int | None, endpoint: str, now: datetime) -> bool:
        """Record the endpoint an attempt's copy reported (None: the serving copy's); True when
        it changed. Raises JobNotFound, EndpointConflict."""
        ...

    def running_deployments(self) -> list[Job]:
        """Deployments running with no move in flight, not in quarantine."""
        ...

    def ended_serve_jobs(self, finished_since: datetime) -> list[Job]:
        """Deployments run as Ray Serve applications that started and finished at or after
        ``finished_since`` (the scheduler writes their last energy estimate then)."""
        ...

    def moving_jobs(self, finished_since: datetime) -> list[tuple[Job, str | None]]:
        """Jobs with a move in flight, each with the endpoint its new copy reported: those
        relocating, and those finished since ``finished_since`` with a move left."""
        ...

    def start_move(self, job_id: str, move: Move, event: JobEvent) -> bool:
        """Running -> relocating with ``move`` in flight and the new copy's attempt."""
        ...

    def save_move(self, job_id: str, before: Move, after: Move, events: Sequence[JobEvent]) -> bool:
        """Replace the move in flight (switching the endpoint, region and submission id when
        ``after`` is the switch)."""
        ...

    def end_move(
        self,
        job_id: str,
        move: Move,
        events: Sequence[JobEvent],
        *,
        now: datetime,
        relocation: Relocation | None,
    ) -> bool:
        """Clear the move in flight: completed (``relocation``) or rolled back (None)."""
        ...


class Store(
    JobStore,
    PlanStore,
    EnergyStore,
    ForecastStore,
    TokenStore,
    RegionStore,
    SavingsStore,
    ProgressStore,
    DeploymentStore,
    Protocol,
):
    """Everything the service keeps durably; one SQL database implements all of it."""

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        ...

    def count_by_state(self, states: Collection[JobState] | None = None) -> dict[JobState, int]: ...

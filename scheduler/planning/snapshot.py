"""What one planning cycle sees, and what it decides.

A cycle is a pure function ``Snapshot -> Decision`` (see ``scheduler.planning.cycle``). The
service builds the snapshot from the store and the forecast store; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from scheduler.domain import Forecast, JobKind, Plan, Policy


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanningJob:
    """A not-yet-started job as the planner sees it.

    ``duration_s`` is the remaining run time (less than expected for a suspended interruptible
    job). ``deadline`` is absolute (None for deployments). ``earliest_start`` is when it may start
    at the soonest (usually ``now``).
    """

    id: str
    kind: JobKind
    gpus: int
    power_w: float
    duration_s: float
    submitted_at: datetime
    earliest_start: datetime
    deadline: datetime | None
    home_region: str
    allowed_regions: tuple[str, ...]
    policy: Policy = Policy.GREENLIGHT
    interruptible: bool = False
    priority: int = 0
    # The current plan, if any: re-planning keeps it unless a better one exists (no flapping).
    current_plan: Plan | None = None
    # A deployment's share of one GPU (0 < share < 1; ``gpus`` is then 0): packed with others
    # per region before the cycle places jobs (``scheduler.planning.consolidation``).
    gpu_share: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Occupancy:
    """GPUs held in a region by a started job (or a plan fixed outside this cycle).

    With ``gpu_shares``: the deployments' shares of one GPU packed onto these ``gpus``."""

    region: str
    gpus: int
    start: datetime
    end: datetime
    gpu_shares: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionState:
    name: str
    gpus: int
    pue: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadError:
    """Measured forecast error at one lead time: mean absolute error in g/kWh."""

    lead_s: float
    mae_g_per_kwh: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything one cycle plans on.

    ``forecasts`` maps a region name to the intensity series to plan on (a forecast, or a
    fallback profile chosen by the service); a region missing from it is skipped, and a job with
    no priced allowed region runs now in its home region. ``actuals`` is only for the ``oracle``
    policy in simulation. ``step_s`` is the planning grid (300 s by default).
    """

    now: datetime
    jobs: tuple[PlanningJob, ...]
    regions: tuple[RegionState, ...]
    forecasts: Mapping[str, Forecast]
    occupancy: tuple[Occupancy, ...] = ()
    forecast_error: Mapping[str, tuple[LeadError, ...]] = field(default_factory=dict)
    actuals: Mapping[str, Forecast] = field(default_factory=dict)
    step_s: int = 300
    # Wall-time budget for the improvement phase (exact solve / local search), seconds.
    budget_s: float = 0.3


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The cycle's output: a plan for every job it could place, and why the others could not.

    ``late`` holds jobs that cannot meet their deadline any more (capacity vanished): they are
    planned as early as possible and also listed here so the service emits an event.
    """

    plans: Mapping[str, Plan]
    late: Mapping[str, str] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)

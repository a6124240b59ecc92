"""Pydantic request and response bodies: the API's wire format, and conversions from domain records.

Pydantic lives here and in settings only. Every datetime is ISO-8601; inputs must carry a UTC
offset (a naive time is rejected with a 422 naming the field), outputs are UTC (``...Z``).
Domain rules (deadline vs duration, region capacity) are the service's: these schemas check
types and shapes, so one rule has one home.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from scheduler.api.deployment_schemas import RelocationPublic
from scheduler.domain import (
    EnergyReport,
    Forecast,
    Job,
    JobEvent,
    JobKind,
    JobSpec,
    JobState,
    MeterMethod,
    Plan,
    Policy,
    Resources,
    Role,
)
from scheduler.domain.energy import MAX_REPORTS_PER_POST
from scheduler.domain.jobs import Dependency, DependencyKind
from scheduler.domain.progress import MAX_UNITS, JobProgress
from scheduler.domain.serve import ServeApp
from scheduler.domain.tokens import ApiToken
from scheduler.planning import validation as limits
from scheduler.planning.snapshot import LeadError
from scheduler.service import ForecastView, RegionStatus

# Times a client may send: anything outside is a typo or an attack on date arithmetic.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
MAX_ATTEMPT = 1_000_000
MAX_ID_CHARS = 128
# Paging beyond this is a client bug (and would overflow a 64-bit OFFSET long before).
MAX_OFFSET = 2**31 - 1


def _clean_text(value: str) -> str:
    reason = limits.text_problem(value)
    if reason:
        raise ValueError(reason)
    return value


def _bounded_time(value: datetime) -> datetime:
    if not EARLIEST_TIME <= value < LATEST_TIME:
        raise ValueError(f"must be between {EARLIEST_TIME.year} and {LATEST_TIME.year - 1}")
    return value


Text = Annotated[str, AfterValidator(_clean_text)]
"""A string with no NUL byte and no unpaired surrogate: storable in every database."""
Time = Annotated[AwareDatetime, AfterValidator(_bounded_time)]
"""An aware datetime between EARLIEST_TIME and LATEST_TIME."""
IdText = Annotated[Text, Field(min_length=1, max_length=MAX_ID_CHARS)]


class _In(BaseModel):
    # allow_inf_nan=False: Python's json accepts NaN/Infinity/1e999, the planner must not.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ResourcesIn(_In):
    gpus: int | float = Field(
        default=0,
        ge=0,
        le=limits.MAX_GPUS,
        description="GPUs per run: whole GPUs, or for a deployment a share of one GPU "
        "(0.25) in multiples of 1/10,000; a count above 1 must be whole",
    )
    cpus: float = Field(default=1.0, gt=0, le=limits.MAX_CPUS, description="CPU cores per run")
    memory_mb: int = Field(
        default=0, ge=0, le=limits.MAX_MEMORY_MB, description="Memory per run, MiB"
    )


class DependencyIn(_In):
    """A job this one runs after: ``afterok`` (it must succeed; if it fails or is cancelled,
    this job is cancelled) or ``afterany`` (any end)."""

    job_id: Text = Field(min_length=1, max_length=64)
    kind: DependencyKind = DependencyKind.AFTEROK


class ServeIn(_In):
    """A deployment run as a Ray Serve application: ``import_path`` (``module:attribute``) and
    ``config``, the rest of one entry of Serve's ``applications`` list (``deployments`` with
    ``num_replicas`` and ``ray_actor_options`` such as ``{"num_gpus": 0.25}``, ``args``,
    ``runtime_env``, ``logging_config``). Its name and route prefix are Greenlight's."""

    import_path: Text = Field(min_length=1, max_length=256)
    config: dict[str, Any] = Field(default_factory=dict)


class JobCreate(_In):
    """A job to submit. ``tenant`` is for admins; others submit for their own tenant."""

    # An example for /docs and for fuzzers' positive cases (regions of the default config).
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "bert-finetune",
                    "entrypoint": "python train.py --epochs 3",
                    "home_region": "eu-central",
                    "expected_duration_s": 3600,
                    "max_delay_s": 21600,
                    "resources": {"gpus": 0, "cpus": 1, "memory_mb": 1024},
                }
            ]
        }
    )

    name: Text = Field(max_length=limits.MAX_NAME_CHARS, description="A name for people")
    kind: JobKind = JobKind.TRAINING
    entrypoint: Text = Field(
        max_length=limits.MAX_ENTRYPOINT_CHARS,
        description=f"Shell command the worker runs (at most {limits.MAX_ENTRYPOINT_CHARS} chars)",
    )
    home_region: Text = Field(
        max_length=limits.MAX_REGION_CHARS,
        description="Where it would run without Greenlight (the baseline)",
    )
    runtime_env: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Ray runtime_env (env_vars, working_dir, ...): at most "
        f"{limits.MAX_RUNTIME_ENV_BYTES} bytes as JSON, {limits.MAX_ENV_VARS} env vars",
    )
    resources: ResourcesIn = Field(default_factory=ResourcesIn)
    expected_duration_s: float | None = Field(default=None, gt=0, le=limits.MAX_DURATION_S)
    deadline: Time | None = Field(default=None, description="Absolute, with offset")
    max_delay_s: float | None = Field(default=None, ge=0, le=limits.MAX_DELAY_S)
    allowed_regions: list[Annotated[Text, Field(max_length=limits.MAX_REGION_CHARS)]] = Field(
        default_factory=list,
        max_length=limits.MAX_ALLOWED_REGIONS,
        description="Empty: every region",
    )
    interruptible: bool = False
    priority: int = Field(default=0, ge=limits.MIN_PRIORITY, le=limits.MAX_PRIORITY)
    max_retries: int = Field(default=0, ge=0, le=limits.MAX_RETRIES)
    policy: Policy = Policy.GREENLIGHT
    expected_power_w: float | None = Field(default=None, gt=0, le=limits.MAX_POWER_W)
    tenant: Text | None = Field(
        default=None,
        max_length=limits.MAX_TENANT_CHARS,
        description="Admin only; default: caller's tenant",
    )
    group_id: Text | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The array or sweep it belongs to (list, cancel and report filter on it)",
    )
    after: list[DependencyIn] = Field(
        default_factory=list,
        max_length=64,
        description="Jobs it runs after (Slurm's afterok / afterany); planned as precedence",
    )
    serve: ServeIn | None = Field(
        default=None,
        description="A deployment as a Ray Serve application, deployed through Serve's REST "
        "API on the region's cluster; its entrypoint is then a label, not run",
    )

    @field_validator("runtime_env")
    @classmethod
    def _runtime_env_fits(cls, value: dict[str, Any]) -> dict[str, Any]:
        found = limits.runtime_env_problem(value)
        if found:
            field, reason = found
            raise ValueError(f"{field} {reason}")
        return value

    def to_spec(self, tenant: str) -> JobSpec:
        """The domain spec, owned by ``tenant``."""
        return JobSpec(
            tenant=tenant,
            name=self.name,
            kind=self.kind,
            entrypoint=self.entrypoint,
            home_region=self.home_region,
            runtime_env=dict(self.runtime_env),
            resources=Resources(
                gpus=self.resources.gpus,
                cpus=self.resources.cpus,
                memory_mb=self.resources.memory_mb,
            ),
            expected_duration_s=self.expected_duration_s,
            deadline=self.deadline,
            max_delay_s=self.max_delay_s,
            allowed_regions=tuple(self.allowed_regions),
            interruptible=self.interruptible,
            priority=self.priority,
            max_retries=self.max_retries,
            policy=self.policy,
            expected_power_w=self.expected_power_w,
            group_id=self.group_id,
            after=tuple(Dependency(job_id=d.job_id, kind=d.kind) for d in self.after),
            serve=ServeApp(import_path=self.serve.import_path, config=dict(self.serve.config))
            if self.serve
            else None,
        )


class JobsCreate(_In):
    """Up to 10,000 jobs submitted at once, all or none; ``group_id`` (default: a new one) is
    given to every job that names none. A refused batch answers 422 with one entry per refused
    job: ``{"index", "field", "message"}`` (``loc`` = ``["body", "jobs", index, field]``)."""

    jobs: list[JobCreate] = Field(min_length=1, max_length=10_000)
    group_id: Text | None = Field(default=None, min_length=1, max_length=64)


class JobsCreated(BaseModel):
    """The jobs a batch created, in the order given, and the group they share."""

    group_id: str | None
    count: int
    ids: list[str]


class GroupCancelled(BaseModel):
    """The jobs of a group a cancel stopped or dequeued."""

    group_id: str
    cancelled: list[str]


class ResourcesPublic(BaseModel):
    gpus: int | float
    cpus: float
    memory_mb: int


class WindowPublic(BaseModel):
    region: str
    start: datetime
    end: datetime


class PlanPublic(BaseModel):
    """The current plan. Emissions are grams CO2e priced on the forecast issued at
    ``forecast_issued_at``; the baseline is the same job started at submit time at home."""

    region: str
    planned_start: datetime
    planned_end: datetime
    windows: list[WindowPublic]
    forecast_emissions_g: float
    baseline_emissions_g: float
    expected_saving_g: float
    policy: Policy
    planned_at: datetime
    forecast_issued_at: datetime | None
    note: str | None

    @classmethod
    def of(cls, plan: Plan) -> PlanPublic:
        return cls(
            region=plan.region,
            planned_start=plan.start,
            planned_end=plan.end,
            windows=[WindowPublic(region=w.region, start=w.start, end=w.end) for w in plan.windows],
            forecast_emissions_g=plan.forecast_emissions_g,
            baseline_emissions_g=plan.baseline_emissions_g,
            expected_saving_g=plan.baseline_emissions_g - plan.forecast_emissions_g,
            policy=plan.policy,
            planned_at=plan.planned_at,
            forecast_issued_at=plan.forecast_issued_at,
            note=plan.note,
        )


class FunctionalUnitsPublic(BaseModel):
    """A job's count of its functional unit (SCI's R): training steps or requests served, as
    of ``attempt`` (a later attempt's total replaces an earlier one's)."""

    units: float
    unit: str
    attempt: int

    @classmethod
    def of(cls, progress: JobProgress) -> FunctionalUnitsPublic:
        return cls(units=progress.units, unit=progress.unit, attempt=progress.attempt)


class JobPublic(BaseModel):
    """A job as stored: its spec, where it stands, and its plan when it has one."""

    id: str
    tenant: str
    name: str
    kind: JobKind
    entrypoint: str
    home_region: str
    runtime_env: dict[str, Any]
    resources: ResourcesPublic
    expected_duration_s: float | None
    deadline: datetime | None
    max_delay_s: float | None
    allowed_regions: list[str]
    interruptible: bool
    priority: int
    max_retries: int
    policy: Policy
    expected_power_w: float | None
    state: JobState
    attempt: int
    region: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    message: str | None
    plan: PlanPublic | None
    group_id: str | None = None
    after: list[DependencyIn] = Field(default_factory=list)
    serve: ServeIn | None = None
    # Deployments: where the serving copy answers, the region of a move in flight, and the
    # completed moves with their expected saving (measured: GET /v1/deployments/{id}/relocations).
    endpoint: str | None = None
    relocating_to: str | None = None
    relocations: list[RelocationPublic] = Field(default_factory=list)
    # SCI's R as the worker counted it; only GET /v1/jobs/{id} reads it (null elsewhere, and
    # until the worker sent a count).
    functional_units: FunctionalUnitsPublic | None = None

    @classmethod
    def of(cls, job: Job, *, progress: JobProgress | None = None) -> JobPublic:
        spec = job.spec
        return cls(
            id=job.id,
            tenant=spec.tenant,
            name=spec.name,
            kind=spec.kind,
            entrypoint=spec.entrypoint,
            home_region=spec.home_region,
            runtime_env=dict(spec.runtime_env),
            resources=ResourcesPublic(
                gpus=spec.resources.gpus,
                cpus=spec.resources.cpus,
                memory_mb=spec.resources.memory_mb,
            ),
            expected_duration_s=spec.expected_duration_s,
            deadline=spec.deadline,
            max_delay_s=spec.max_delay_s,
            allowed_regions=list(spec.allowed_regions),
            interruptible=spec.interruptible,
            priority=spec.priority,
            max_retries=spec.max_retries,
            policy=spec.policy,
            expected_power_w=spec.expected_power_w,
            state=job.state,
            attempt=job.attempt,
            region=job.region,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            exit_code=job.exit_code,
            message=job.message,
            group_id=spec.group_id,
            after=[DependencyIn(job_id=d.job_id, kind=d.kind) for d in spec.after],
            serve=ServeIn(import_path=spec.serve.import_path, config=dict(spec.serve.config))
            if spec.serve
            else None,
            plan=PlanPublic.of(job.plan) if job.plan else None,
            endpoint=job.endpoint,
            relocating_to=job.move.to_region if job.move is not None else None,
            relocations=[RelocationPublic.of(r) for r in job.relocations],
            functional_units=FunctionalUnitsPublic.of(progress) if progress else None,
        )


class JobsPublic(BaseModel):
    """One page of jobs, newest first. ``count`` is the total before paging, up to 10,000
    (``count_capped`` beyond; null on a page asked for by ``cursor``); ``next_cursor`` asks
    for the page after this one (null on the last), stable while new jobs arrive."""

    data: list[JobPublic]
    count: int | None
    limit: int
    offset: int
    next_cursor: str | None = None
    # True when the filter holds more than 10,000 jobs: ``count`` is then 10,000, a floor.
    count_capped: bool = False


class JobEventPublic(BaseModel):
    id: int | None
    job_id: str
    at: datetime
    kind: str
    actor: str
    reason: str
    from_state: JobState | None
    to_state: JobState | None
    expected_emissions_g: float | None

    @classmethod
    def of(cls, event: JobEvent) -> JobEventPublic:
        return cls(
            id=event.id,
            job_id=event.job_id,
            at=event.at,
            kind=event.kind,
            actor=event.actor,
            reason=event.reason,
            from_state=event.from_state,
            to_state=event.to_state,
            expected_emissions_g=event.expected_emissions_g,
        )


class JobEventsPublic(BaseModel):
    data: list[JobEventPublic]


class JobLogsPublic(BaseModel):
    job_id: str
    logs: str


class EnergyReportIn(_In):
    """Energy one device used in ``[interval_start, interval_end)``, joules."""

    attempt: int = Field(ge=0, le=MAX_ATTEMPT)
    node: Text = Field(min_length=1, max_length=256)
    device: Text = Field(min_length=1, max_length=64)
    interval_start: Time
    interval_end: Time
    energy_j: float = Field(
        ge=0,
        description="Joules; at most the documented maximum device power times the interval",
    )
    method: MeterMethod

    @model_validator(mode="after")
    def _ordered(self) -> EnergyReportIn:
        if self.interval_end < self.interval_start:
            raise ValueError("interval_end must not be before interval_start")
        return self

    def to_domain(self, job_id: str) -> EnergyReport:
        return EnergyReport(
            job_id=job_id,
            attempt=self.attempt,
            node=self.node,
            device=self.device,
            interval_start=self.interval_start,
            interval_end=self.interval_end,
            energy_j=self.energy_j,
            method=self.method,
        )


class EnergyReportsIn(_In):
    reports: list[EnergyReportIn] = Field(max_length=MAX_REPORTS_PER_POST)


class EnergyAccepted(BaseModel):
    """How many reports were new, and how many repeated one already stored (ignored)."""

    accepted: int
    duplicates: int


class ProgressIn(_In):
    """A worker's running total of its attempt's functional units (SCI's R)."""

    attempt: int = Field(ge=1, le=MAX_ATTEMPT)
    units: float = Field(
        ge=0, le=MAX_UNITS, allow_inf_nan=False, description="Training steps or requests served"
    )
    unit: Literal["steps", "requests"] | None = Field(
        default=None, description="The job kind's unit (steps: training, requests: deployment)"
    )


class ProgressPublic(BaseModel):
    """The job's stored total; ``changed`` is false when the report repeated it."""

    job_id: str
    attempt: int
    units: float
    unit: str
    changed: bool


class RegionPublic(BaseModel):
    """A region and the freshness of its carbon signal."""

    name: str
    grid_zone: str
    provider: str
    gpus: int
    pue: float
    ray_address: str | None
    node_label: str | None
    last_refresh: datetime | None
    horizon_end: datetime | None
    stale: bool
    last_error: str | None

    @classmethod
    def of(cls, status: RegionStatus) -> RegionPublic:
        r = status.region
        return cls(
            name=r.name,
            grid_zone=r.grid_zone,
            provider=r.provider,
            gpus=r.gpus,
            pue=r.pue,
            ray_address=r.ray_address,
            node_label=r.node_label,
            last_refresh=status.last_refresh,
            horizon_end=status.horizon_end,
            stale=status.stale,
            last_error=status.last_error,
        )


class RegionsPublic(BaseModel):
    data: list[RegionPublic]


class IntensityPointPublic(BaseModel):
    valid_at: datetime
    g_per_kwh: float


class ForecastPublic(BaseModel):
    """A region's latest forecast (gCO2e/kWh points), its age and the best window in it.

    ``forecast`` fields are null when the region has none yet. ``best_start``/``best_end`` is
    the lowest-mean window of ``window_s`` seconds in the forecast.
    """

    region: str
    grid_zone: str
    provider: str | None
    signal: str | None
    issued_at: datetime | None
    resolution_s: int | None
    points: list[IntensityPointPublic]
    stale: bool
    age_s: float | None
    best_start: datetime | None
    best_end: datetime | None
    window_s: float

    @classmethod
    def of(cls, view: ForecastView) -> ForecastPublic:
        fc: Forecast | None = view.forecast
        return cls(
            region=view.region.name,
            grid_zone=view.region.grid_zone,
            provider=fc.provider if fc else None,
            signal=str(fc.signal) if fc else None,
            issued_at=fc.issued_at if fc else None,
            resolution_s=fc.resolution_s if fc else None,
            points=[
                IntensityPointPublic(valid_at=p.valid_at, g_per_kwh=p.g_per_kwh)
                for p in (fc.points if fc else ())
            ],
            stale=view.stale,
            age_s=view.age_s,
            best_start=view.best_start,
            best_end=view.best_end,
            window_s=view.window_s,
        )


class LeadErrorPublic(BaseModel):
    lead_s: float
    mae_g_per_kwh: float


class ForecastAccuracyPublic(BaseModel):
    """Mean absolute forecast error (gCO2e/kWh) by lead time, from stored forecasts vs actuals."""

    region: str
    data: list[LeadErrorPublic]

    @classmethod
    def of(cls, region: str, errors: list[LeadError]) -> ForecastAccuracyPublic:
        return cls(
            region=region,
            data=[LeadErrorPublic(lead_s=e.lead_s, mae_g_per_kwh=e.mae_g_per_kwh) for e in errors],
        )


class ForecastPullPublic(BaseModel):
    """Region name -> ``ok`` or what went wrong fetching its forecast."""

    results: dict[str, str]


class TokenCreate(_In):
    tenant: Text = Field(min_length=1, max_length=limits.MAX_TENANT_CHARS)
    role: Role = Role.USER
    name: Text = Field(default="", max_length=200)
    job_id: IdText | None = Field(default=None, description="Required for role 'job'")


class TokenPublic(BaseModel):
    """A new token. ``token`` is the secret: shown this once, stored only as a hash."""

    id: str
    tenant: str
    role: Role
    name: str
    job_id: str | None
    attempt: int | None = None
    created_at: datetime
    expires_at: datetime | None = None
    token: str

    @classmethod
    def of(cls, secret: str, token: ApiToken) -> TokenPublic:
        return cls(
            id=token.id,
            tenant=token.tenant,
            role=token.role,
            name=token.name,
            job_id=token.job_id,
            attempt=token.attempt,
            created_at=token.created_at,
            expires_at=token.expires_at,
            token=secret,
        )


class TokenInfoPublic(BaseModel):
    """A stored token, never its secret."""

    id: str
    tenant: str
    role: Role
    name: str
    job_id: str | None
    attempt: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked: bool

    @classmethod
    def of(cls, token: ApiToken) -> TokenInfoPublic:
        return cls(
            id=token.id,
            tenant=token.tenant,
            role=token.role,
            name=token.name,
            job_id=token.job_id,
            attempt=token.attempt,
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked=token.revoked,
        )


class TokensPublic(BaseModel):
    data: list[TokenInfoPublic]


class ErrorItem(BaseModel):
    """One refused field: where (``loc``, e.g. ``["body", "resources", "gpus"]``) and why."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorPublic(BaseModel):
    """Every error response: a machine ``code`` and a human ``detail`` (for 422, the list of
    refused fields). Refused input is never echoed back."""

    code: str = Field(description="validation_error, not_found, conflict, unavailable, ...")
    detail: str | list[ErrorItem]


class HealthPublic(BaseModel):
    """``status``: ok, degraded (stale forecasts; still serving) or down (database
    unreachable; 503)."""

    status: str
    database: str
    stale_regions: list[str]
    time: str
    # With the cycles in a scheduler process: its heartbeat (status ok, stale or absent).
    scheduler: dict[str, Any] | None = None


# Path parameters: ids and region names are short printable text.
JobIdPath = Annotated[Text, Path(min_length=1, max_length=MAX_ID_CHARS)]
RegionPath = Annotated[Text, Path(min_length=1, max_length=limits.MAX_REGION_CHARS)]
TokenIdPath = Annotated[Text, Path(min_length=1, max_length=MAX_ID_CHARS)]
# Query parameters that name a tenant or a region.
TenantQuery = Annotated[Text | None, Query(max_length=limits.MAX_TENANT_CHARS)]
RegionQuery = Annotated[Text | None, Query(max_length=limits.MAX_REGION_CHARS)]

"""What every use case needs: the adapters behind their ports and the service's tunables."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from scheduler.domain import Region, RegionNotFound
from scheduler.forecasts.refresh import RefreshResult
from scheduler.planning.ledger import AdmissionLedger
from scheduler.planning.snapshot import LeadError
from scheduler.ports import Clock, Dispatcher, ForecastProvider, Store
from scheduler.reports.sci import EmbodiedFactors
from scheduler.service.jobtable import JobTable
from scheduler.service.relocation_config import RelocationConfig


class RemoteCycles(Protocol):
    """Cycles running in another process, as the API reports them."""

    def health(self) -> dict[str, object]: ...

    def counters(self) -> Mapping[str, float]: ...


class Refresher(Protocol):
    """The forecast refresher as the service uses it (``scheduler.forecasts.refresh``)."""

    def refresh(
        self,
        now: datetime | None = None,
        regions: Collection[str] | None = None,
        *,
        force: bool = False,
    ) -> RefreshResult: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    """Tunables, in the units their names say."""

    api_url: str = "http://127.0.0.1:8470"
    # How the cluster runs the worker wrapper; the entrypoint follows "--".
    worker_command: str = "python -m workers.runner"
    step_s: int = 300
    forecast_max_age_s: float = 6 * 3600.0
    planning_budget_s: float = 0.3
    gpu_w: float = 300.0
    cpu_core_w: float = 12.0
    base_w: float = 20.0
    idle_gpu_w: float = 60.0  # one idle GPU's draw: the packing credit in the savings report
    # A run the cluster keeps PENDING longer than this (scheduler time) is stopped and retried.
    pending_timeout_s: float = 600.0
    deployment_horizon_s: float = 24 * 3600.0
    forecast_retention_s: float = 30 * 86400.0
    # Finished jobs' events older than this are pruned with the forecasts.
    event_retention_s: float = 90 * 86400.0
    dispatch_batch: int = 100
    # Each job's checkpoint lives at <checkpoint_dir>/<job id>.pt (GREENLIGHT_CHECKPOINT).
    checkpoint_dir: str = "/tmp/greenlight-checkpoints"
    # A replica that took an attempt's submit holds it this long (longer than the slowest
    # submit: a few Ray round trips at their timeouts); then another may take it over.
    submit_lease_s: float = 180.0
    # An attempt the cluster no longer knows counts as still running while its runner reported
    # energy (or it was dispatched) within this many seconds: the runner reports every 30 s.
    heartbeat_s: float = 120.0
    # A region's Ray that nothing asked for this long is probed by reconcile (seconds).
    region_probe_s: float = 15.0
    # An arrival wakes the planner at once after a quiet spell, else this long after its last
    # run, so a burst is planned in a few runs rather than one per job (seconds).
    plan_debounce_s: float = 0.2
    # During a stream of arrivals the planner's runs take at most this share of its time (a
    # run of 2 s at 100,000 queued is followed by 2 s off at 0.5): the API's requests and the
    # database keep the rest of a core (issue 8: submit p99 with 100,000 queued).
    plan_busy_share: float = 0.5
    # When running deployments move to a greener region (scheduler.service.relocating).
    relocation: RelocationConfig = field(default_factory=RelocationConfig)
    # SCI's M factors for the savings report: every region's, and those of regions with their
    # own (by name; scheduler.service.embodied_config).
    embodied: EmbodiedFactors = field(default_factory=EmbodiedFactors)
    embodied_by_region: Mapping[str, EmbodiedFactors] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class ServiceContext:
    store: Store
    regions: Mapping[str, Region]
    dispatcher: Dispatcher
    clock: Clock
    providers: Mapping[str, ForecastProvider]  # by region name
    refresher: Refresher | None
    config: ServiceConfig
    # In-process observability: counters for /metrics; the store stays the only state that matters.
    counters: Counter[str] = field(default_factory=Counter)
    last_errors: dict[str, str] = field(default_factory=dict)
    # Measured forecast error by lead time per region, recomputed after each refresh.
    forecast_error: dict[str, tuple[LeadError, ...]] = field(default_factory=dict)
    # One plan cycle at a time. The API never takes it: submits insert and set wake_planner.
    lock: threading.Lock = field(default_factory=threading.Lock)
    dispatch_lock: threading.Lock = field(default_factory=threading.Lock)
    # Set by whoever makes work for a cycle (an arrival, a plan that makes a job due, a run that
    # ends); the periodic loop waits on these, with its interval as the safety net.
    wake_planner: threading.Event = field(default_factory=threading.Event)
    wake_dispatcher: threading.Event = field(default_factory=threading.Event)
    wake_reconciler: threading.Event = field(default_factory=threading.Event)
    # Regions whose Ray could not be reached: name -> (since, why). Jobs are not planned there
    # until a call to it succeeds again. ``region_seen_ok``: monotonic time of the last success.
    regions_down: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    # The plan cycle's job table, kept between cycles (only changed rows are read again).
    job_table: JobTable = field(default_factory=JobTable)
    region_seen_ok: dict[str, float] = field(default_factory=dict)
    # Free capacity the last plan cycle left, for submit-time admission
    # (``scheduler.service.admission``); None until a cycle has run in this process.
    admission: AdmissionLedger | None = None
    admission_lock: threading.Lock = field(default_factory=threading.Lock)
    # With the cycles in another process (``scheduler.service.remote_cycles``): when this
    # process admitted each job since the last ledger it adopted; the hook the scheduler
    # process stores each new ledger with; and where /healthz and /metrics read the cycles.
    admission_times: dict[str, datetime] = field(default_factory=dict)
    publish_ledger: Callable[[AdmissionLedger, datetime], None] | None = None
    remote_cycles: RemoteCycles | None = None

    def region(self, name: str) -> Region:
        try:
            return self.regions[name]
        except KeyError:
            raise RegionNotFound(name) from None

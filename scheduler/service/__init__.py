"""Use cases: what the API, the CLI and the periodic cycles call. One facade, thin modules.

``GreenlightService`` holds no state of its own beyond counters: the store is the truth, so the
process can be killed at any instant and restarted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from scheduler.domain import (
    ApiToken,
    EnergyReport,
    Job,
    JobEvent,
    JobKind,
    JobSpec,
    JobState,
    Principal,
    Role,
)
from scheduler.domain.progress import JobProgress
from scheduler.planning.snapshot import Decision, LeadError
from scheduler.reports.savings import SavingsReport
from scheduler.service import (
    batch,
    cycles,
    dashboard,
    deployments,
    energy,
    jobs,
    progress,
    tokens,
    views,
)
from scheduler.service.batch import BatchSubmitted
from scheduler.service.context import ServiceConfig, ServiceContext
from scheduler.service.job_counts import JobCounts
from scheduler.service.poll_pacing import PollPacer
from scheduler.service.timings import CycleTimings
from scheduler.service.views import ForecastView, RegionStatus

__all__ = ["ForecastView", "GreenlightService", "RegionStatus", "ServiceConfig", "ServiceContext"]

log = logging.getLogger(__name__)


class GreenlightService:
    """Every use case, each a one-line delegation to the module that holds it."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        # Wall time of each cycle, for /metrics; the cycles themselves read only ctx.clock
        # (and the pacer of reconcile's questions the monotonic clock: load on the cluster
        # is real time, whatever the clock of the plans says).
        self.timings = CycleTimings()
        self._pacer = PollPacer()
        self._job_counts = JobCounts()

    # jobs
    def submit(self, spec: JobSpec, principal: Principal) -> Job:
        # Never plans: the request inserts and wakes the planner (ctx.wake_planner).
        return jobs.submit(self.ctx, spec, principal)

    def submit_batch(
        self, specs: Sequence[JobSpec], principal: Principal, group_id: str | None = None
    ) -> BatchSubmitted:
        return batch.submit_batch(self.ctx, specs, principal, group_id)

    def cancel_group(self, group_id: str, principal: Principal) -> list[str]:
        return jobs.cancel_group(self.ctx, group_id, principal)

    def get_job(self, job_id: str, principal: Principal) -> Job:
        return jobs.get_job(self.ctx, job_id, principal)

    def list_jobs(
        self,
        principal: Principal,
        *,
        state: JobState | None = None,
        tenant: str | None = None,
        kind: JobKind | None = None,
        limit: int = 50,
        offset: int = 0,
        group_id: str | None = None,
        cursor: str | None = None,
    ) -> jobs.JobPage:
        return jobs.list_jobs(
            self.ctx,
            principal,
            state=state,
            tenant=tenant,
            kind=kind,
            group_id=group_id,
            limit=limit,
            offset=offset,
            cursor=cursor,
        )

    def cancel(self, job_id: str, principal: Principal) -> Job:
        return jobs.cancel(self.ctx, job_id, principal)

    def events(self, job_id: str, principal: Principal) -> list[JobEvent]:
        return jobs.events(self.ctx, job_id, principal)

    def logs(self, job_id: str, principal: Principal) -> str:
        return jobs.logs(self.ctx, job_id, principal)

    def record_energy(
        self, job_id: str, principal: Principal, reports: Sequence[EnergyReport]
    ) -> tuple[int, int]:
        return energy.record_energy(self.ctx, job_id, principal, reports)

    # deployments
    def record_endpoint(self, job_id: str, principal: Principal, endpoint: str) -> bool:
        return deployments.record_endpoint(self.ctx, job_id, principal, endpoint)

    def deployment_endpoint(
        self, job_id: str, principal: Principal
    ) -> deployments.DeploymentEndpoint:
        return deployments.deployment_endpoint(self.ctx, job_id, principal)

    def relocations(self, job_id: str, principal: Principal) -> list[deployments.RelocationView]:
        return deployments.relocations(self.ctx, job_id, principal)

    def job_progress(self, job_id: str) -> JobProgress | None:
        """The job's stored count of functional units (None before its worker sent one); the
        caller has read the job already (``get_job`` checks access)."""
        return self.ctx.store.job_progress([job_id]).get(job_id)

    def record_progress(
        self, job_id: str, principal: Principal, *, attempt: int, units: float, unit: str | None
    ) -> tuple[JobProgress, bool]:
        return progress.record_progress(
            self.ctx, job_id, principal, attempt=attempt, units=units, unit=unit
        )

    # regions, forecasts, reports
    def regions(self) -> list[RegionStatus]:
        return views.regions(self.ctx)

    def forecast(self, region: str) -> ForecastView:
        return views.forecast(self.ctx, region)

    def forecast_accuracy(self, region: str) -> list[LeadError]:
        return views.forecast_accuracy(self.ctx, region)

    def pull_forecasts(self, region: str | None = None) -> dict[str, str]:
        if region is not None:
            self.ctx.region(region)
        return self.refresh_forecasts(None if region is None else [region], force=True)

    def savings_report(
        self,
        principal: Principal,
        *,
        tenant: str | None = None,
        region: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        period: str = "day",
        group_id: str | None = None,
        group_by: str | None = None,
    ) -> SavingsReport:
        return views.savings_report(
            self.ctx,
            principal,
            tenant=tenant,
            region=region,
            start=start,
            end=end,
            period=period,
            group_id=group_id,
            group_by=group_by,
        )

    def dashboard(self, principal: Principal) -> dict[str, Any]:
        return dashboard.dashboard(self.ctx, principal)

    # auth
    def create_token(
        self, *, tenant: str, role: Role, name: str = "", job_id: str | None = None
    ) -> tuple[str, ApiToken]:
        return tokens.issue_token(self.ctx, tenant=tenant, role=role, name=name, job_id=job_id)

    def authenticate(self, secret: str) -> Principal:
        return tokens.authenticate(self.ctx, secret)

    def exchange_token(self, bootstrap_secret: str) -> tuple[str, ApiToken]:
        exchanged = tokens.exchange_bootstrap(self.ctx, bootstrap_secret)
        # A runner exchanges as its run starts: reconcile, which asks about queued runs
        # slowly, should look at this one now (and then see its end promptly).
        self.ctx.wake_reconciler.set()
        return exchanged

    def list_tokens(
        self, *, tenant: str | None = None, include_workers: bool = False
    ) -> list[ApiToken]:
        return tokens.list_tokens(self.ctx.store, tenant=tenant, include_workers=include_workers)

    def revoke_token(self, token_id: str) -> ApiToken:
        revoked = tokens.revoke_token(self.ctx.store, token_id)
        self.ctx.counters["tokens_revoked_total"] += 1  # empties the API's token cache
        return revoked

    # cycles, fired by scheduler.periodic
    def refresh_forecasts(
        self, regions: list[str] | None = None, force: bool = False
    ) -> dict[str, str]:
        from scheduler.service.refresh import refresh

        with self.timings.time("refresh"):
            return refresh(self.ctx, regions, force=force)

    def plan_cycle(self) -> Decision:
        with self.timings.time("plan"):
            return cycles.plan_cycle(self.ctx)

    def dispatch_due(self) -> list[str]:
        with self.timings.time("dispatch"):
            return cycles.dispatch_due(self.ctx)

    def reconcile(self, *, paced: bool = False) -> int:
        """One reconcile pass; ``paced`` (the periodic loop): only the runs due for a look
        (``scheduler.service.poll_pacing``)."""
        with self.timings.time("reconcile"):
            return cycles.reconcile(self.ctx, self._pacer if paced else None)

    def prune(self) -> int:
        return cycles.prune(self.ctx)

    # observability
    def health(self) -> dict[str, object]:
        try:
            self.ctx.store.ping()
            database = "ok"
        except Exception as e:  # a health probe reports any failure rather than raising
            # The error text can name hosts, users and paths: the log gets it, the
            # (unauthenticated) caller only learns that the database is unreachable.
            log.warning("health check: database unreachable: %s", e)
            database = "unreachable"
        stale = [s.region.name for s in self.regions() if s.stale] if database == "ok" else []
        status = "down" if database != "ok" else ("degraded" if stale else "ok")
        out: dict[str, object] = {
            "status": status,
            "database": database,
            "stale_regions": stale,
            "time": self.ctx.clock.now().isoformat(),
        }
        if self.ctx.remote_cycles is not None:  # the cycles run in a scheduler process
            scheduler = self.ctx.remote_cycles.health()
            out["scheduler"] = scheduler
            if status == "ok" and scheduler.get("status") != "ok":
                out["status"] = "degraded"
        return out

    def metrics_snapshot(self) -> dict[str, float]:
        out: dict[str, float] = {f"greenlight_{k}": float(v) for k, v in self.ctx.counters.items()}
        if self.ctx.remote_cycles is not None:  # the scheduler process's counters, added in
            for k, v in self.ctx.remote_cycles.counters().items():
                out[f"greenlight_{k}"] = out.get(f"greenlight_{k}", 0.0) + v
        for name in self.ctx.regions:
            down = 1.0 if name in self.ctx.regions_down else 0.0
            out[f'greenlight_region_down{{region="{name}"}}'] = down
        for state, n in self._job_counts.read(self.ctx.store).items():
            out[f'greenlight_jobs{{state="{state.value}"}}'] = float(n)
        return out

"""The composition root: Settings -> concrete adapters -> service, API, cycles.

The only module that imports every adapter. Nothing is built at import time.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from scheduler.clock import ScaledClock, SystemClock
from scheduler.config import Settings
from scheduler.domain import ApiToken, ConfigError, Region, Role
from scheduler.planning.relocation import RelocationPolicy
from scheduler.ports import Clock, Dispatcher, ForecastProvider
from scheduler.service import GreenlightService, ServiceConfig, ServiceContext
from scheduler.service.embodied_config import embodied_factors
from scheduler.service.relocation_config import RelocationConfig

if TYPE_CHECKING:
    from scheduler.store.sql import SqlStore

log = logging.getLogger(__name__)


def regions_from(settings: Settings) -> dict[str, Region]:
    return {
        r.name: Region(
            name=r.name,
            grid_zone=r.grid_zone,
            provider=r.provider,
            gpus=r.gpus,
            pue=r.pue,
            ray_address=r.ray_address,
            node_label=r.node_label,
        )
        for r in settings.regions
    }


def service_config(settings: Settings, *, worker_command: str | None = None) -> ServiceConfig:
    embodied, embodied_by_region = embodied_factors(settings)
    return ServiceConfig(
        embodied=embodied,
        embodied_by_region=embodied_by_region,
        api_url=settings.effective_api_url,
        worker_command=worker_command or f"{sys.executable} -m workers.runner",
        step_s=settings.step_s,
        forecast_max_age_s=settings.forecast_max_age_s,
        planning_budget_s=settings.planning_budget_s,
        gpu_w=settings.power.gpu_w,
        cpu_core_w=settings.power.cpu_core_w,
        base_w=settings.power.base_w,
        idle_gpu_w=settings.power.idle_gpu_w,
        forecast_retention_s=settings.forecast_retention_days * 86400.0,
        event_retention_s=settings.event_retention_days * 86400.0,
        checkpoint_dir=settings.checkpoint_dir
        or os.path.join(tempfile.gettempdir(), "greenlight-checkpoints"),
        relocation=relocation_config(settings),
    )


def relocation_config(settings: Settings) -> RelocationConfig:
    r = settings.relocation
    return RelocationConfig(
        enabled=r.enabled,
        policy=RelocationPolicy(
            horizon_s=r.horizon_s,
            threshold_g=r.threshold_g,
            threshold_pct=r.threshold_pct,
            hysteresis=r.hysteresis,
            min_stay_s=r.min_stay_s,
            overlap_s=r.overlap_s,
        ),
        health_timeout_s=r.health_timeout_s,
        drain_s=r.drain_s,
        health_path=r.health_path,
        health_check_timeout_s=r.health_check_timeout_s,
    )


def build_store(settings: Settings, *, migrate: bool = True) -> SqlStore:
    """The SQL store for ``settings.database_url``, migrated to head first unless told not to."""
    from scheduler.store.migrate import upgrade
    from scheduler.store.sql import SqlStore, create_store_engine

    if migrate:
        upgrade(settings.database_url)
    return SqlStore(create_store_engine(settings.database_url))


def create_token(
    settings: Settings, *, tenant: str, role: Role, name: str = ""
) -> tuple[str, ApiToken]:
    """Issue a token straight into the database: how the first admin token is made. Needs
    neither Ray nor providers."""
    from scheduler.service.tokens import new_token

    store = build_store(settings)
    try:
        return new_token(store, SystemClock().now(), tenant=tenant, role=role, name=name)
    finally:
        store.close()


def build_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    dispatcher: Dispatcher | None = None,
    ray: RayEndpoint | None = None,
    migrate: bool = True,
) -> GreenlightService:
    """A service on the configured database and providers.

    ``dispatcher`` defaults to a RayDispatcher for ``ray`` (else the configured address);
    it contacts Ray only when a job is dispatched, so the API runs without a cluster.
    """
    from scheduler.forecasts.factory import build_provider
    from scheduler.forecasts.refresh import ForecastRefresher

    store = build_store(settings, migrate=migrate)
    regions = regions_from(settings)
    store.sync_regions(list(regions.values()))
    clock = clock or SystemClock()
    anchor = clock.now()
    providers: dict[str, ForecastProvider] = {
        r.name: build_provider(r, settings, anchor) for r in settings.regions
    }
    refresher = ForecastRefresher(
        {r.name: (providers[r.name], r.grid_zone, r.refresh_interval_s) for r in settings.regions},
        store,
        clock,
    )
    live: Mapping[str, Region] = regions
    if dispatcher is None:
        from scheduler.dispatch.ray_jobs import RayDispatcher
        from scheduler.service.capacity import LiveRegions

        read_capacity = ray is not None
        ray = ray or RayEndpoint(settings.ray_address or "http://127.0.0.1:8265")
        ray_dispatcher = RayDispatcher(
            ray.address,
            auth_token=ray.auth_token,
            auth_tokens=region_tokens(settings),
            serve_http_host=settings.serve_http_host,
            serve_http_port=settings.serve_http_port,
        )
        dispatcher = ray_dispatcher
        live = LiveRegions(regions, ray_dispatcher)
        if read_capacity:  # a cluster is there: plan with what it has from the first submit
            live.refresh()
    ctx = ServiceContext(
        store=store,
        regions=live,
        dispatcher=dispatcher,
        clock=clock,
        providers=providers,
        refresher=refresher,
        config=service_config(settings),
    )
    return GreenlightService(ctx)


def region_tokens(settings: Settings) -> dict[str, str]:
    """Bearer tokens by Ray address, for regions whose cluster has its own credential (the
    region's ``ray_token_env`` names the variable holding it). Raises ConfigError when that
    variable is unset."""
    tokens = {}
    for region in settings.regions:
        if region.ray_address and region.ray_token_env:
            token = os.environ.get(region.ray_token_env)
            if not token:
                raise ConfigError(
                    f"region {region.name!r}: ${region.ray_token_env} (its Ray token) is not set"
                )
            tokens[region.ray_address.rstrip("/")] = token
    return tokens


@dataclass(frozen=True, slots=True)
class RayEndpoint:
    address: str
    auth_token: str | None = None


@contextlib.contextmanager
def ray_cluster(settings: Settings) -> Iterator[RayEndpoint]:
    """The configured Ray address, or a local head on loopback started (and stopped) here.

    Head and clients must agree on ``RAY_AUTH_MODE`` (Ray 2.60 turns token auth on by default).
    """
    os.environ.setdefault("RAY_AUTH_MODE", settings.ray_auth_mode)
    if settings.ray_address:
        yield RayEndpoint(settings.ray_address, os.environ.get("RAY_AUTH_TOKEN"))
        return
    from scheduler.dispatch.local_ray import LocalRayHead

    with LocalRayHead() as head:
        yield RayEndpoint(head.dashboard_url, head.auth_token)


@dataclass
class RunningServer:
    """A uvicorn server in a background thread (the demo and tests use it)."""

    server: object
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(timeout=10)


def start_api_thread(service: GreenlightService, host: str, port: int) -> RunningServer:
    import time

    import uvicorn

    from scheduler.api.app import create_app

    config = uvicorn.Config(
        create_app(service), host=host, port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="greenlight-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError(f"API server did not start on {host}:{port}")
    bound = port or server.servers[0].sockets[0].getsockname()[1]
    return RunningServer(server=server, thread=thread, url=f"http://{host}:{bound}")


def serve(settings: Settings, *, cycles: str = "child") -> None:
    """``greenlight serve``: the API, the cycles and (embedded default) a local Ray head.

    ``cycles``: ``child`` (default) runs them in a scheduler process this one spawns, watches
    and stops (``scheduler.process``), so a plan cycle never holds the API's interpreter;
    ``none`` serves the API alone (``--no-cycles``: run ``greenlight scheduler`` beside it);
    ``inline`` runs them in this process's threads, as before the split.
    """
    import uvicorn

    from scheduler.api.app import create_app
    from scheduler.logs import configure_logging
    from scheduler.periodic import start_periodic
    from scheduler.process import SchedulerChild, attach_api

    configure_logging(settings.log_format, settings.log_level)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler
    # it found: with the default one the process would die there, before the local Ray head
    # below is stopped. These handlers turn it into SystemExit, so every `finally` runs.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_on_signal)
    with contextlib.ExitStack() as stack:
        if cycles == "none" and not settings.ray_address:
            # No head of our own: the scheduler process runs the jobs. Cancel records the stop
            # for its reconcile when this process cannot reach the cluster.
            ray = None
        else:
            ray = stack.enter_context(ray_cluster(settings))
        service = build_service(settings, ray=ray)
        if cycles == "inline":
            service.refresh_forecasts()
            stack.callback(start_periodic(service, settings).shutdown, wait=False)
        else:
            stack.callback(attach_api(service))
            if cycles == "child":
                assert ray is not None
                child = SchedulerChild(settings, ray.address, ray.auth_token)
                child.start()
                stack.callback(child.stop)
        app = create_app(
            service,
            max_body_bytes=settings.api_max_body_bytes,
            threads=settings.api_threads,
            slow_threads=settings.api_slow_threads,
        )
        # What exists now (modules, the service, the app) lives as long as the process: moved
        # out of the collector's reach, a full collection no longer walks it, the largest
        # pause in a submit's p99 under load (issue 8).
        gc.collect()
        gc.freeze()
        uvicorn.run(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
            access_log=False,
        )


def run_scheduler(settings: Settings, *, parent_pid: int | None = None) -> None:
    """``greenlight scheduler``: the plan, dispatch, reconcile and refresh cycles without the
    API, until SIGTERM (or, for ``serve``'s child, until its parent is gone). Uses the
    configured Ray, else starts a local head."""
    import time

    from scheduler.logs import configure_logging
    from scheduler.periodic import start_periodic
    from scheduler.process import attach_scheduler

    configure_logging(settings.log_format, settings.log_level)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_on_signal)
    with contextlib.ExitStack() as stack:
        ray = stack.enter_context(ray_cluster(settings))
        service = build_service(settings, ray=ray)
        stack.callback(attach_scheduler(service))
        try:
            service.refresh_forecasts()
        except Exception:  # the refresh cycle retries; the other cycles need not wait for it
            log.exception("first forecast refresh failed")
        # wait=False: a cycle in flight (a reconcile over many Ray calls) is dropped, as a
        # crash would drop it; every cycle is safe to cut anywhere, and SIGTERM must be prompt.
        stack.callback(start_periodic(service, settings).shutdown, wait=False)
        log.info("scheduler running (pid %d)", os.getpid())
        while parent_pid is None or os.getppid() == parent_pid:
            time.sleep(0.5)
        log.warning("scheduler: parent process %d is gone; stopping", parent_pid)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def scaled_clock(speed: float) -> ScaledClock:
    now = datetime.now(UTC)
    return ScaledClock(anchor_wall=now, anchor=now, speed=speed)

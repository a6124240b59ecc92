"""APScheduler wiring only: fires service cycles on intervals. No business rule lives here."""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from scheduler.config import Settings
from scheduler.service import GreenlightService

log = logging.getLogger(__name__)


def _guarded(name: str, call: Callable[[], object]) -> Callable[[], None]:
    """A cycle that fails is logged and retried at its next firing; it never stops the service."""

    def run() -> None:
        try:
            call()
        except Exception:
            log.exception("cycle %s failed", name)

    return run


def start_periodic(service: GreenlightService, settings: Settings,
                   scale: float = 1.0) -> BackgroundScheduler:
    """Start the cycles. ``scale`` divides every interval (the demo's compressed clock)."""
    scheduler = BackgroundScheduler(timezone="UTC")
    cycles: list[tuple[str, Callable[[], object], float]] = [
        ("refresh-forecasts", service.refresh_forecasts, settings.refresh_interval_s / scale),
        ("plan", service.plan_cycle, settings.plan_interval_s / scale),
        ("dispatch-due", service.dispatch_due, settings.dispatch_interval_s),
        ("reconcile", service.reconcile, settings.reconcile_interval_s),
        ("prune-forecasts", service.prune, 3600.0),
    ]
    for name, call, every_s in cycles:
        # coalesce + max_instances=1: a slow cycle is skipped, never run twice at once.
        scheduler.add_job(_guarded(name, call), "interval", seconds=max(every_s, 0.5), id=name,
                          name=name, coalesce=True, max_instances=1)
    scheduler.start()
    return scheduler

"""Fires the service's cycles: wiring only, no business rule lives here.

Plan, dispatch and reconcile each run in a thread of their own that waits on the context's
wake event (``wake_planner``, ``wake_dispatcher``, ``wake_reconciler``) with the configured
interval as a safety net: an arrival wakes the planner (at once after a quiet spell, else
once a short pause since its last run has passed, so a burst is planned in a few runs, not
one per job), a plan that makes a job due wakes the dispatcher, a dispatch wakes reconcile.
While jobs are on the cluster reconcile polls every ``ACTIVE_RECONCILE_S`` so a finished run is
noticed promptly. Each cycle runs one at a time (its own thread), and the API never waits on
one. A plan cycle also sets an alarm (:class:`DueAlarm`) for the earliest planned start ahead,
which wakes the dispatcher then. Forecast refresh, pruning and (where regions read Ray)
capacity stay on APScheduler.

A failing cycle never stops the service. A database outage is logged once when it starts and
once when it ends, not as a traceback per tick; any other failure logs its traceback once and
then one line per repeat until the cycle succeeds again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler

from scheduler.config import Settings
from scheduler.service import GreenlightService
from scheduler.service.capacity import LiveRegions

log = logging.getLogger(__name__)

# While started jobs exist, reconcile runs at least this often (seconds).
ACTIVE_RECONCILE_S = 0.5
MIN_INTERVAL_S = 0.5


class CycleGuard:
    """Runs one cycle and logs its failures without storms (see the module docstring)."""

    def __init__(
        self, name: str, call: Callable[[], object], database_up: Callable[[], bool]
    ) -> None:
        self.name = name
        self._call = call
        self._database_up = database_up
        self._outage_since: float | None = None
        self._failing: str | None = None

    def __call__(self) -> object:
        try:
            result = self._call()
        except Exception as e:  # a cycle is a shell: it must never stop the service
            self._failed(e)
            return None
        self._recovered()
        return result

    def _failed(self, e: Exception) -> None:
        if not self._database_up():
            if self._outage_since is None:
                self._outage_since = time.monotonic()
                log.warning(
                    "cycle %s: database unreachable (%s: %s); retrying quietly until it returns",
                    self.name,
                    type(e).__name__,
                    _first_line(e),
                    extra={"fields": {"event": "db_outage", "cycle": self.name}},
                )
            return
        text = f"{type(e).__name__}: {_first_line(e)}"
        if self._failing != text:
            log.exception("cycle %s failed", self.name)
            self._failing = text
        else:
            log.error("cycle %s failed again: %s", self.name, text)

    def _recovered(self) -> None:
        if self._outage_since is not None:
            log.warning(
                "cycle %s: database reachable again after %.0f s",
                self.name,
                time.monotonic() - self._outage_since,
                extra={"fields": {"event": "db_outage_end", "cycle": self.name}},
            )
            self._outage_since = None
        if self._failing is not None:
            log.info("cycle %s succeeded again", self.name)
            self._failing = None


class CycleLoop:
    """A thread running ``guard`` when ``wake`` is set, or ``every_s`` after its last run
    (``busy_every_s`` after a run that returned something truthy: work in flight).

    With ``debounce_s``, a wake soon after a run waits until ``debounce_s`` has passed since
    that run ended, and at least long enough for the loop's runs to take no more than
    ``busy_share`` of its time (a long run is followed by a proportionate pause)."""

    def __init__(
        self,
        guard: CycleGuard,
        every_s: float,
        wake: threading.Event,
        *,
        debounce_s: float = 0.0,
        busy_every_s: float | None = None,
        busy_share: float = 1.0,
    ) -> None:
        self._guard = guard
        self._every_s = max(every_s, MIN_INTERVAL_S)
        self._busy_every_s = busy_every_s
        self._wake = wake
        self._debounce_s = debounce_s
        if not 0.0 < busy_share <= 1.0:
            raise ValueError(f"busy_share must be in (0, 1], not {busy_share}")
        self._idle_per_busy = (1.0 - busy_share) / busy_share
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cycle-{guard.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        if wait:
            self._thread.join(timeout=30.0)

    def _run(self) -> None:
        wait_s = 0.0  # first run at once, as a start-up catches up
        ended_s = float("-inf")
        took_s = 0.0
        while not self._stop.is_set():
            woke = self._wake.wait(wait_s)
            if self._stop.is_set():
                return
            if woke and self._debounce_s:
                # A wake after a quiet spell runs at once (the first job of a sweep is not kept
                # waiting); one soon after a run waits out the rest of the pause, so the rest
                # of a burst is taken in one more run, not one per arrival.
                pause_s = max(self._debounce_s, took_s * self._idle_per_busy)
                rest_s = pause_s - (time.monotonic() - ended_s)
                if rest_s > 0:
                    self._stop.wait(rest_s)
            self._wake.clear()
            started_s = time.monotonic()
            busy = self._guard()
            ended_s = time.monotonic()
            took_s = ended_s - started_s
            wait_s = self._every_s
            if busy and self._busy_every_s is not None:
                wait_s = min(wait_s, self._busy_every_s)


class DueAlarm:
    """Sets ``wake`` when the earliest planned start arrives, so a job planned for later is
    handed to Ray at its start rather than up to a dispatch interval after it. ``set_after``
    replaces the alarm (each plan cycle knows the next start); the interval stays the net."""

    def __init__(self, wake: threading.Event) -> None:
        self._wake = wake
        self._cond = threading.Condition()
        self._at: float | None = None  # time.monotonic() of the alarm
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="due-alarm", daemon=True)

    def start(self) -> DueAlarm:
        self._thread.start()
        return self

    def set_after(self, delay_s: float | None) -> None:
        with self._cond:
            self._at = None if delay_s is None else time.monotonic() + max(delay_s, 0.0)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                if self._at is None:
                    self._cond.wait()
                    continue
                left_s = self._at - time.monotonic()
                if left_s > 0:
                    self._cond.wait(left_s)
                    continue
                self._at = None
                self._wake.set()


def next_start_s(decision: object, now: datetime) -> float | None:
    """Seconds from ``now`` to the earliest planned start after it in ``decision`` (a plan
    cycle's result), or None when every plan starts now or none does."""
    plans = getattr(decision, "plans", None) or {}
    starts = [p.start for p in plans.values() if p.start > now]
    return (min(starts) - now).total_seconds() if starts else None


class PeriodicCycles:
    """The running cycles; ``shutdown`` stops them all."""

    def __init__(
        self, scheduler: BackgroundScheduler, loops: list[CycleLoop], alarm: DueAlarm | None = None
    ) -> None:
        self.scheduler = scheduler
        self.loops = loops
        self.alarm = alarm

    def shutdown(self, wait: bool = True) -> None:
        if self.alarm is not None:
            self.alarm.stop()
        for loop in self.loops:
            loop.stop(wait=False)
        self.scheduler.shutdown(wait=wait)
        if wait:
            for loop in self.loops:
                loop.stop(wait=True)


def start_periodic(
    service: GreenlightService, settings: Settings, scale: float = 1.0
) -> PeriodicCycles:
    """Start the cycles. ``scale`` divides the planning and refresh intervals (the demo's
    compressed clock)."""
    ctx = service.ctx

    def database_up() -> bool:
        try:
            ctx.store.ping()
        except Exception:  # any failure to reach it is the outage we are asking about
            return False
        return True

    def guard(name: str, call: Callable[[], object]) -> CycleGuard:
        return CycleGuard(name, call, database_up)

    alarm = DueAlarm(ctx.wake_dispatcher)

    def plan() -> object:
        decision = service.plan_cycle()
        delay_s = next_start_s(decision, ctx.clock.now())
        alarm.set_after(None if delay_s is None else delay_s / scale)
        return decision

    loops = [
        CycleLoop(
            guard("plan", plan),
            settings.plan_interval_s / scale,
            ctx.wake_planner,
            debounce_s=ctx.config.plan_debounce_s,
            busy_share=ctx.config.plan_busy_share,
        ),
        CycleLoop(
            guard("dispatch-due", service.dispatch_due),
            settings.dispatch_interval_s,
            ctx.wake_dispatcher,
        ),
        CycleLoop(
            guard("reconcile", lambda: service.reconcile(paced=True)),
            settings.reconcile_interval_s,
            ctx.wake_reconciler,
            busy_every_s=ACTIVE_RECONCILE_S,
        ),
    ]
    scheduler = BackgroundScheduler(timezone="UTC")
    timed: list[tuple[str, Callable[[], object], float]] = [
        ("refresh-forecasts", service.refresh_forecasts, settings.refresh_interval_s / scale),
        ("prune-forecasts", service.prune, 3600.0),
    ]
    if isinstance(ctx.regions, LiveRegions):  # each region's capacity, read from Ray
        timed.append(
            ("read-capacity", ctx.regions.refresh, max(settings.plan_interval_s / scale, 5.0))
        )
    for name, call, every_s in timed:
        # coalesce + max_instances=1: a slow cycle is skipped, never run twice at once.
        scheduler.add_job(
            guard(name, call),
            "interval",
            seconds=max(every_s, MIN_INTERVAL_S),
            id=name,
            name=name,
            coalesce=True,
            max_instances=1,
        )
    scheduler.start()
    alarm.start()
    for loop in loops:
        loop.start()
    return PeriodicCycles(scheduler, loops, alarm)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__

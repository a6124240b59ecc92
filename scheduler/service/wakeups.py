"""Wake the cycles of another process: an arrival in an API process, the planner elsewhere.

In one process an arrival sets ``ctx.wake_planner`` and the plan loop, waiting on it, runs.
With the cycles in a scheduler process of their own (``greenlight serve`` spawns one;
``greenlight scheduler`` is one) the API process instead:

* swaps the context's wake events for :class:`ForwardingEvent` s, whose ``set`` also sets one
  shared flag, so a request pays a flag and nothing else;
* runs a :class:`WakeForwarder` thread that waits on that flag, lets a burst settle
  (``debounce_s``), and bumps the ``wake:<cycle>`` counters in the store (and, on PostgreSQL,
  NOTIFYs) for the events that were set: one write per burst, not per submit.

The scheduler process runs a :class:`WakeWatcher`: on PostgreSQL it LISTENs (a wake arrives in
milliseconds) and checks the counters every ``safety_poll_s`` in case a notification was
lost; on SQLite it polls the counters every ``poll_s`` (one primary-key read). A changed
counter sets that cycle's event in the scheduler's context. Each cycle keeps its interval as
the safety net, so a wake lost to an outage only delays a cycle, never loses work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from scheduler.service.context import ServiceContext
from scheduler.store.shared_state import SharedState, WakeListener

log = logging.getLogger(__name__)

CYCLES = ("plan", "dispatch", "reconcile")
POLL_S = 0.1  # SQLite: how often the scheduler reads the wake counters
SAFETY_POLL_S = 2.0  # PostgreSQL: counters read this often besides LISTEN
DEBOUNCE_S = 0.02


class ForwardingEvent(threading.Event):
    """A ``threading.Event`` whose ``set`` also sets ``hub`` (what the forwarder waits on)."""

    def __init__(self, hub: threading.Event) -> None:
        super().__init__()
        self._hub = hub

    def set(self) -> None:
        super().set()
        self._hub.set()


def _events(ctx: ServiceContext) -> dict[str, threading.Event]:
    return {
        "plan": ctx.wake_planner,
        "dispatch": ctx.wake_dispatcher,
        "reconcile": ctx.wake_reconciler,
    }


class WakeForwarder:
    """API side: forwards the context's wake events to the store (see the module docstring)."""

    def __init__(
        self, ctx: ServiceContext, shared: SharedState, *, debounce_s: float = DEBOUNCE_S
    ) -> None:
        self._hub = threading.Event()
        ctx.wake_planner = ForwardingEvent(self._hub)
        ctx.wake_dispatcher = ForwardingEvent(self._hub)
        ctx.wake_reconciler = ForwardingEvent(self._hub)
        self._ctx = ctx
        self._shared = shared
        self._debounce_s = debounce_s
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="wake-forwarder", daemon=True)

    def start(self) -> WakeForwarder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._hub.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._hub.wait()
            if self._stop.is_set():
                return
            self._stop.wait(self._debounce_s)
            self._hub.clear()
            names = [name for name, event in _events(self._ctx).items() if event.is_set()]
            for name in names:
                _events(self._ctx)[name].clear()
            self.forward(names)

    def forward(self, names: list[str]) -> None:
        try:
            self._shared.bump(names)
        except Exception as e:  # the database is down: the cycles' intervals cover it
            if not self._failing:
                log.warning("could not wake the scheduler (%s: %s)", type(e).__name__, e)
            self._failing = True
            return
        self._failing = False
        self._ctx.counters["wakeups_forwarded_total"] += 1


class WakeWatcher:
    """Scheduler side: sets ``ctx``'s wake events when another process bumped a counter."""

    def __init__(
        self,
        ctx: ServiceContext,
        shared: SharedState,
        *,
        poll_s: float = POLL_S,
        safety_poll_s: float = SAFETY_POLL_S,
        listener: Callable[[], WakeListener] | None = None,
    ) -> None:
        self._ctx = ctx
        self._shared = shared
        self._listener = (
            (listener or (lambda: WakeListener(shared.engine)))() if shared.is_postgres else None
        )
        self._poll_s = safety_poll_s if self._listener is not None else poll_s
        self._seen: dict[str, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wake-watcher", daemon=True)

    def start(self) -> WakeWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        if self._listener is not None:
            self._listener.close()

    def _run(self) -> None:
        next_poll = 0.0
        while not self._stop.is_set():
            names: set[str] = set()
            if self._listener is not None:
                names |= self._listener.wait(min(self._poll_s, 0.5))
            else:
                self._stop.wait(self._poll_s)
            if self._listener is None or time.monotonic() >= next_poll:
                names |= self._poll()
                next_poll = time.monotonic() + self._poll_s
            events = _events(self._ctx)
            for name in names:
                if name in events:
                    events[name].set()
                    self._ctx.counters["wakeups_received_total"] += 1

    def _poll(self) -> set[str]:
        try:
            versions = self._shared.wake_versions(CYCLES)
        except Exception as e:  # an outage: the cycles report it; try again next poll
            log.debug("wake counters unreadable: %s", e)
            return set()
        seen, self._seen = self._seen, versions
        if seen is None:  # the first read: whatever was bumped before we started is old news
            return set()
        return {name for name, v in versions.items() if seen.get(name) != v}

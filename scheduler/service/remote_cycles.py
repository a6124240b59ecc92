"""The cycles in another process: what each side writes to the store and reads back.

Scheduler process (``greenlight scheduler``, or the child ``greenlight serve`` spawns):

* each plan cycle's admission ledger is written to the ``ledger`` row
  (:func:`ledger_publisher`, called by ``admission.rebuild``);
* a :class:`StatusPublisher` thread writes the cycles' health to the ``cycles`` row every
  ``every_s``: a heartbeat, counters, cycle-duration histograms, regions found down, the last
  error of each cycle.

API process (``greenlight serve --no-cycles``, or the parent ``greenlight serve``): a
:class:`SchedulerFollower` thread reads both rows' versions every ``poll_s`` (one primary-key
read); a new ledger replaces the one submits check against, keeping what this process admitted
since the cycle's snapshot (``admission.adopt``); a new status feeds ``/healthz`` (``scheduler``:
ok, stale or absent) and ``/metrics``. A request never reads either row itself.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime

from scheduler.planning.ledger import AdmissionLedger
from scheduler.service import admission
from scheduler.service.context import ServiceContext
from scheduler.service.timings import CycleHistogram, CycleTimings
from scheduler.store import ledger as stored_ledger
from scheduler.store.shared_state import SharedState

log = logging.getLogger(__name__)

LEDGER = "ledger"
STATUS = "cycles"
# No heartbeat for this long: /healthz says the scheduler is stale (degraded).
STALE_AFTER_S = 30.0


def ledger_publisher(
    shared: SharedState,
) -> Callable[[AdmissionLedger, datetime], None]:
    """The hook ``admission.rebuild`` calls with each new ledger (scheduler side)."""
    failing = False

    def publish(ledger: AdmissionLedger, snapshot_at: datetime) -> None:
        nonlocal failing
        try:
            shared.put(LEDGER, stored_ledger.encode(ledger, snapshot_at))
        except Exception as e:  # the cycle goes on; the API keeps the previous ledger
            if not failing:
                log.warning("could not store the admission ledger (%s: %s)", type(e).__name__, e)
            failing = True
            return
        failing = False

    return publish


class StatusPublisher:
    """Scheduler side: the ``cycles`` row, every ``every_s`` seconds."""

    def __init__(
        self,
        ctx: ServiceContext,
        timings: CycleTimings,
        shared: SharedState,
        *,
        every_s: float = 1.0,
    ) -> None:
        self._ctx = ctx
        self._timings = timings
        self._shared = shared
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-publisher", daemon=True)

    def start(self) -> StatusPublisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def body(self) -> bytes:
        ctx = self._ctx
        return json.dumps(
            {
                "pid": os.getpid(),
                "heartbeat_at": datetime.now(UTC).isoformat(),
                "counters": dict(ctx.counters),
                "timings": [asdict(h) for h in self._timings.snapshot()],
                "regions_down": {
                    name: [since.isoformat(), why]
                    for name, (since, why) in dict(ctx.regions_down).items()
                },
                "last_errors": dict(ctx.last_errors),
            }
        ).encode()

    def publish(self) -> None:
        self._shared.put(STATUS, self.body())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.publish()
            except Exception as e:  # an outage: the cycles log it; the heartbeat goes stale
                log.debug("could not store the cycle status: %s", e)
            self._stop.wait(self._every_s)


class SchedulerFollower:
    """API side: follows the ledger and the cycles' status (see the module docstring)."""

    def __init__(self, ctx: ServiceContext, shared: SharedState, *, poll_s: float = 0.25) -> None:
        self._ctx = ctx
        self._shared = shared
        self._poll_s = poll_s
        self._versions: dict[str, int] = {}
        self._status: dict[str, object] = {}
        self._status_at: datetime | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler-follower", daemon=True)

    def start(self) -> SchedulerFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception as e:  # an outage: /healthz reports the database itself
                log.debug("scheduler state unreadable: %s", e)
            self._stop.wait(self._poll_s)

    def poll(self) -> None:
        """Read what changed: a new ledger is adopted, a new status kept."""
        versions = self._shared.versions((LEDGER, STATUS))
        if versions.get(LEDGER) != self._versions.get(LEDGER):
            row = self._shared.get(LEDGER)
            if row is not None and row.body is not None:
                try:
                    stored = stored_ledger.decode(row.body)
                except ValueError as e:  # a newer scheduler's format: admit on checks alone
                    log.warning("admission ledger unreadable: %s", e)
                else:
                    admission.adopt(self._ctx, stored.ledger, stored.snapshot_at)
                self._versions[LEDGER] = row.version
        if versions.get(STATUS) != self._versions.get(STATUS):
            row = self._shared.get(STATUS)
            if row is not None and row.body is not None:
                status = json.loads(row.body)
                with self._lock:
                    self._status = status
                    self._status_at = row.updated_at
                down = {
                    name: (datetime.fromisoformat(since), why)
                    for name, (since, why) in status.get("regions_down", {}).items()
                }
                regions_down = self._ctx.regions_down
                for name in set(regions_down) - set(down):
                    regions_down.pop(name, None)
                regions_down.update(down)
                self._versions[STATUS] = row.version

    # --- what /healthz and /metrics read ---------------------------------------------------

    def health(self) -> dict[str, object]:
        """``status`` ok, stale (no heartbeat for ``STALE_AFTER_S``) or absent (none yet).
        No error text: /healthz answers callers it has not authenticated."""
        with self._lock:
            at = self._status_at
        if at is None:
            return {"status": "absent", "heartbeat_at": None}
        age_s = (datetime.now(UTC) - at).total_seconds()
        return {
            "status": "ok" if age_s <= STALE_AFTER_S else "stale",
            "heartbeat_at": at.isoformat(),
        }

    def counters(self) -> Mapping[str, float]:
        with self._lock:
            counters = self._status.get("counters") or {}
        return {str(k): float(v) for k, v in dict(counters).items()}  # type: ignore[call-overload]

    def histograms(self) -> list[CycleHistogram]:
        with self._lock:
            raw = list(self._status.get("timings") or [])  # type: ignore[call-overload]
        return [
            CycleHistogram(
                cycle=h["cycle"], counts=tuple(h["counts"]), count=h["count"], sum_s=h["sum_s"]
            )
            for h in raw
        ]


class RemoteTimings(CycleTimings):
    """The scheduler process's cycle durations, as ``/metrics`` reads ``service.timings``."""

    def __init__(self, follower: SchedulerFollower) -> None:
        super().__init__()
        self._follower = follower

    def snapshot(self) -> list[CycleHistogram]:
        return self._follower.histograms()

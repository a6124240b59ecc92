"""The API and the cycles in separate processes: wiring for each side and the child process.

A plan cycle over a large queue is CPU-bound Python; in the API's process it held the
interpreter lock and the API's latency followed it. Split, the two share only the store:

* the scheduler process stores each admission ledger and its health, and watches for wake-ups
  (``attach_scheduler``);
* the API process forwards its wake events, follows the ledger and reads the health back
  (``attach_api``); see ``scheduler.service.wakeups`` and ``scheduler.service.remote_cycles``.

``greenlight serve`` runs the scheduler as a :class:`SchedulerChild`: started after the Ray
head (it is handed the head's address and token), restarted if it dies, stopped (SIGTERM, then
SIGKILL after a grace period) before the head is. The child exits on its own when its parent
is gone, so a SIGKILLed ``serve`` leaves no cycles running.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, cast

from scheduler.config import Settings
from scheduler.service import GreenlightService
from scheduler.service.capacity import LiveRegions
from scheduler.service.remote_cycles import (
    RemoteTimings,
    SchedulerFollower,
    StatusPublisher,
    ledger_publisher,
)
from scheduler.service.wakeups import WakeForwarder, WakeWatcher
from scheduler.store.shared_state import SharedState

log = logging.getLogger(__name__)

SETTINGS_ENV = "GREENLIGHT_SCHEDULER_SETTINGS"
PARENT_ENV = "GREENLIGHT_SCHEDULER_PARENT"
STOP_GRACE_S = 10.0
# The child runs at this niceness: on a busy machine the API's requests win the CPU from a long
# plan cycle (the cycles are background work; their intervals absorb a slower cycle). At 5 the
# cycles a burst of submits wakes took 40 % of a 2-core box from the API; at 10, 32 clients'
# submits ran ~25 % faster at half the p99, and the cycles still get the CPU the API leaves.
CHILD_NICE = 10
RESTART_DELAY_S = 2.0
# An API process without cycles re-reads each region's capacity from Ray this often.
CAPACITY_EVERY_S = 30.0


def _shared(service: GreenlightService) -> SharedState:
    return SharedState(cast(Any, service.ctx.store).engine)


def attach_api(service: GreenlightService) -> Callable[[], None]:
    """Wire ``service`` as an API whose cycles run elsewhere; returns the function that stops
    the threads this starts."""
    ctx = service.ctx
    shared = _shared(service)
    forwarder = WakeForwarder(ctx, shared).start()
    follower = SchedulerFollower(ctx, shared)
    try:
        follower.poll()  # a ledger and a status at once, if a scheduler already left them
    except Exception as e:  # the database is not there yet: the thread keeps trying
        log.warning("scheduler state not read at start: %s", e)
    follower.start()
    ctx.remote_cycles = follower
    service.timings = RemoteTimings(follower)
    stop = threading.Event()
    if isinstance(ctx.regions, LiveRegions):
        regions = ctx.regions

        def read_capacity() -> None:
            while not stop.wait(CAPACITY_EVERY_S):
                try:
                    regions.refresh()
                except Exception as e:  # the scheduler process reports Ray's health
                    log.debug("capacity read failed: %s", e)

        threading.Thread(target=read_capacity, name="read-capacity", daemon=True).start()

    def detach() -> None:
        stop.set()
        forwarder.stop()
        follower.stop()

    return detach


def attach_scheduler(service: GreenlightService) -> Callable[[], None]:
    """Wire ``service`` as the cycles of API processes elsewhere; returns the stopper."""
    ctx = service.ctx
    shared = _shared(service)
    ctx.publish_ledger = ledger_publisher(shared)
    watcher = WakeWatcher(ctx, shared).start()
    status = StatusPublisher(ctx, service.timings, shared).start()

    def detach() -> None:
        watcher.stop()
        status.stop()
        try:
            status.publish()  # the last heartbeat says when it stopped
        except Exception as e:  # stopping during an outage
            log.debug("last status not stored: %s", e)

    return detach


class SchedulerChild:
    """``greenlight serve``'s scheduler process (see the module docstring)."""

    def __init__(self, settings: Settings, ray_address: str, ray_token: str | None) -> None:
        self._settings = settings.model_copy(update={"ray_address": ray_address})
        self._ray_token = ray_token
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watch = threading.Thread(target=self._supervise, name="scheduler-child", daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env[SETTINGS_ENV] = self._settings.model_dump_json()
        env[PARENT_ENV] = str(os.getpid())
        if self._ray_token:
            env["RAY_AUTH_TOKEN"] = self._ray_token
        proc = subprocess.Popen(
            [sys.executable, "-c", "from scheduler.process import child_main; child_main()"],
            env=env,
        )
        log.info("scheduler process started (pid %d)", proc.pid)
        return proc

    def start(self) -> None:
        self._proc = self._spawn()
        self._watch.start()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            code = proc.wait()
            if self._stopping.is_set():
                return
            log.error("scheduler process %d exited with %s; restarting", proc.pid, code)
            if self._stopping.wait(RESTART_DELAY_S):
                return
            self._proc = self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log.warning("scheduler process %d ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            proc.wait()


def child_main() -> None:
    """Entry point of the child process (settings and parent pid from the environment)."""
    from scheduler.bootstrap import run_scheduler

    settings = Settings.model_validate(json.loads(os.environ[SETTINGS_ENV]))
    parent = int(os.environ[PARENT_ENV])
    # A parent that died before we got here: do not start cycles nobody will stop.
    if os.getppid() != parent:
        return
    with contextlib.suppress(OSError):  # a platform without nice: same priority as the API
        os.nice(CHILD_NICE)
    with contextlib.suppress(SystemExit):  # SIGTERM: the cycles stopped cleanly
        run_scheduler(settings, parent_pid=parent)

"""The periodic loops: a wake event runs a cycle at once (the interval is only a safety net),
and failures are logged without storms: a database outage once at its start and once at its
end, any other failure with its traceback once and then one line per repeat."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from scheduler.periodic import CycleGuard, CycleLoop


class Flaky:
    def __init__(self) -> None:
        self.error: Exception | None = None
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return 0


def test_a_database_outage_is_logged_once_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cycle, database = Flaky(), {"up": True}
    guard = CycleGuard("plan", cycle, lambda: database["up"])
    with caplog.at_level(logging.INFO, logger="scheduler.periodic"):
        guard()
        database["up"] = False
        cycle.error = ConnectionError("connection refused")
        for _ in range(20):
            assert guard() is None
        database["up"] = True
        cycle.error = None
        guard()
        guard()
    messages = [r.getMessage() for r in caplog.records]
    assert cycle.calls == 23
    assert sum("database unreachable" in m for m in messages) == 1
    assert sum("reachable again" in m for m in messages) == 1
    assert not any(r.exc_info for r in caplog.records)  # no traceback during the outage


def test_a_bug_logs_its_traceback_once_then_one_line_per_repeat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cycle = Flaky()
    cycle.error = ValueError("bad row")
    guard = CycleGuard("reconcile", cycle, lambda: True)
    with caplog.at_level(logging.INFO, logger="scheduler.periodic"):
        for _ in range(5):
            guard()
        cycle.error = None
        guard()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
    assert sum("failed again" in r.getMessage() for r in caplog.records) == 4
    assert any("succeeded again" in r.getMessage() for r in caplog.records)


def test_a_wake_runs_the_cycle_at_once_not_at_the_interval() -> None:
    ran = threading.Event()
    calls: list[float] = []

    def cycle() -> None:
        calls.append(time.monotonic())
        ran.set()

    wake = threading.Event()
    loop = CycleLoop(CycleGuard("dispatch-due", cycle, lambda: True), 3600.0, wake)
    loop.start()
    try:
        assert ran.wait(5.0)  # the first run is at start
        ran.clear()
        woken_at = time.monotonic()
        wake.set()
        assert ran.wait(5.0)
        assert calls[-1] - woken_at < 0.5
        assert len(calls) == 2
    finally:
        loop.stop()


def test_a_wake_after_a_quiet_spell_runs_at_once_and_a_burst_waits_out_the_pause() -> None:
    ran = threading.Event()
    ended: list[float] = []

    def cycle() -> None:
        ended.append(time.monotonic())
        ran.set()

    wake = threading.Event()
    pause_s = 1.0
    loop = CycleLoop(CycleGuard("plan", cycle, lambda: True), 3600.0, wake, debounce_s=pause_s)
    loop.start()
    try:
        assert ran.wait(5.0)  # the first run is at start
        time.sleep(pause_s + 0.2)  # quiet for longer than the pause
        ran.clear()
        woken_at = time.monotonic()
        wake.set()
        assert ran.wait(5.0)
        assert ended[-1] - woken_at < pause_s / 2  # at once, not after the pause
        ran.clear()
        for _ in range(3):  # a burst right after that run
            wake.set()
            time.sleep(0.02)
        assert ran.wait(5.0)
        assert ended[-1] - ended[-2] >= pause_s  # waited out the pause since the last run
        time.sleep(0.3)
        assert len(ended) == 3  # the whole burst in one run
    finally:
        loop.stop()


def test_during_a_stream_of_wakes_long_runs_take_at_most_their_share() -> None:
    """A run that takes 0.4 s is followed by at least 0.4 s off at a share of one half, even
    while wakes keep coming; a short run by the plain pause only."""
    starts: list[float] = []
    ends: list[float] = []
    long_run = threading.Event()
    long_run.set()

    def cycle() -> None:
        starts.append(time.monotonic())
        time.sleep(0.4 if long_run.is_set() else 0.0)
        ends.append(time.monotonic())

    wake = threading.Event()
    stop_waking = threading.Event()

    def keep_waking() -> None:
        while not stop_waking.is_set():
            wake.set()
            time.sleep(0.01)

    loop = CycleLoop(
        CycleGuard("plan", cycle, lambda: True), 3600.0, wake, debounce_s=0.05, busy_share=0.5
    )
    waker = threading.Thread(target=keep_waking, daemon=True)
    loop.start()
    waker.start()
    try:
        deadline = time.monotonic() + 10.0
        while len(ends) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        gaps = [b - a for a, b in zip(ends[:3], starts[1:4], strict=True)]
        assert len(gaps) == 3
        assert min(gaps) >= 0.4 * 0.95  # each long run, a pause as long
        long_run.clear()
        while len(ends) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(ends) >= 8
        short_gaps = [b - a for a, b in zip(ends[5:7], starts[6:8], strict=True)]
        assert max(short_gaps) < 0.3  # short runs: the debounce, not a share of 0.4 s
    finally:
        stop_waking.set()
        loop.stop()


def test_a_share_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="busy_share"):
        CycleLoop(
            CycleGuard("plan", lambda: None, lambda: True), 60.0, threading.Event(), busy_share=0
        )

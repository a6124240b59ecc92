"""A job planned for later is handed to Ray at its start (issue 8, item 5): each plan cycle
sets an alarm for the earliest planned start ahead, which wakes the dispatcher then, rather
than up to a dispatch interval later."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from scheduler.periodic import DueAlarm, next_start_s

T0 = datetime(2026, 12, 6, 12, tzinfo=UTC)


def test_the_alarm_wakes_at_its_time_and_a_new_one_replaces_it() -> None:
    wake = threading.Event()
    alarm = DueAlarm(wake).start()
    try:
        alarm.set_after(0.3)
        assert not wake.wait(0.15)
        began = time.monotonic()
        assert wake.wait(2.0)
        assert time.monotonic() - began < 0.5
        wake.clear()
        alarm.set_after(0.2)
        alarm.set_after(None)  # the next cycle found nothing ahead: no alarm
        assert not wake.wait(0.4)
    finally:
        alarm.stop()


def test_next_start_is_the_earliest_plan_start_ahead() -> None:
    def plan(minutes: float) -> SimpleNamespace:
        return SimpleNamespace(start=T0 + timedelta(minutes=minutes))

    decision = SimpleNamespace(plans={"a": plan(0), "b": plan(30), "c": plan(7.5), "d": plan(-5)})
    assert next_start_s(decision, T0) == 450.0
    assert next_start_s(SimpleNamespace(plans={"a": plan(0)}), T0) is None
    assert next_start_s(SimpleNamespace(plans={}), T0) is None

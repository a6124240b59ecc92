"""Errors raised by energy meters.

``workers`` cannot import ``scheduler``, so this is its own small hierarchy; the API maps
nothing from it (meters never cross the wire, only their readings do). A subclass exists only
where a caller reacts differently:

* :class:`MeterUnavailable` -- this meter cannot read on this machine at all (no library, no
  device, permission denied): the factory falls back to another meter or to an estimate.
* :class:`MeterNotSupported` -- the device exists but lacks this way of reading (a GPU without
  the total-energy counter): the meter itself falls back (to power sampling).
* :class:`MeterReadError` -- a meter that worked stopped working mid-run (GPU lost, file
  vanished): the composite keeps the last good reading for those devices and carries on.
"""

from __future__ import annotations


class MeterError(Exception):
    """Root of every error an energy meter raises on purpose."""

    def __init__(self, device: str | None, reason: str) -> None:
        where = f"{device}: " if device else ""
        super().__init__(f"{where}{reason}")
        self.device = device
        self.reason = reason


class MeterUnavailable(MeterError):
    """The meter cannot read on this machine (no library, no device, permission denied)."""


class MeterNotSupported(MeterUnavailable):
    """The device exists but does not support this way of reading it."""


class MeterReadError(MeterError):
    """A reading failed after the meter had started successfully."""

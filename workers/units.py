"""Count what a job did, for Greenlight's SCI per functional unit (R).

A training job counts optimiser steps, a deployment the requests it served. The job's code
calls this module; it never talks to the network. The running total goes to the file named by
``GREENLIGHT_UNITS_FILE`` (the runner sets it and posts the total to the API, periodically and
at exit)::

    from workers.units import UnitCounter

    steps = UnitCounter("steps")
    for batch in data:
        train_step(batch)
        steps.add()          # or steps.set_total(global_step) after resuming a checkpoint
    steps.flush()

or, for one call site, ``report_units(total)``. Without ``GREENLIGHT_UNITS_FILE`` (a run outside
Greenlight) counting still works and writes nothing.

The file is one JSON object, ``{"units": 1234.0, "unit": "steps"}``, replaced atomically (a
temporary file in the same folder, then ``os.replace``): a reader sees the old total or the new
one, never half a file. The total never goes down (``set_total`` refuses a lower value), so the
API's rule — a total only grows within an attempt — holds by construction. Writes are throttled
to one per ``min_interval_s`` (hot loops call ``add`` per step); ``flush`` writes at once, and
is called at interpreter exit.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

UNITS_FILE_ENV = "GREENLIGHT_UNITS_FILE"
UNITS = ("steps", "requests")

__all__ = ["UNITS", "UNITS_FILE_ENV", "UnitCounter", "read_units_file", "report_units"]


def write_units_file(path: Path, units: float, unit: str) -> None:
    """Replace ``path`` atomically with ``{"units": units, "unit": unit}``."""
    import tempfile  # the job's side only: the runner, which imports this module, never writes

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"units": units, "unit": unit}, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_units_file(path: Path) -> tuple[float, str] | None:
    """``(units, unit)`` from a units file; None when it is missing or not one (a job that
    wrote something else there must not stop the runner)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        units, unit = float(data["units"]), data["unit"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(unit, str) or not math.isfinite(units) or units < 0:
        return None
    return units, unit


class UnitCounter:
    """A monotone running total of ``unit`` (``steps`` or ``requests``), written to ``path``
    (default: ``$GREENLIGHT_UNITS_FILE``; None: count only). Thread-safe: a server's handler
    threads may share one counter.

    Raises ValueError for an unknown unit, a negative or non-finite count, or a lower total.
    """

    def __init__(
        self,
        unit: str = "steps",
        *,
        path: str | Path | None = None,
        min_interval_s: float = 1.0,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
        target = path if path is not None else os.environ.get(UNITS_FILE_ENV) or None
        self.unit = unit
        self.path = Path(target) if target is not None else None
        self._min_interval_s = min_interval_s
        self._monotonic_s = monotonic_s
        self._lock = threading.Lock()
        self._total = 0.0
        self._written: float | None = None
        self._written_at_s = -math.inf
        if self.path is not None:
            atexit.register(self.flush)

    @property
    def total(self) -> float:
        return self._total

    def add(self, count: float = 1.0) -> float:
        """Count ``count`` more units (>= 0); returns the new total."""
        _check(count)
        with self._lock:
            self._total += count
            self._maybe_write(force=False)
            return self._total

    def set_total(self, total: float) -> None:
        """Set the total (a job resumed from a checkpoint knows its global step). A total lower
        than the current one raises ValueError: the count never goes back."""
        _check(total)
        with self._lock:
            if total < self._total:
                raise ValueError(f"total {total:g} is below the current {self._total:g}")
            self._total = total
            self._maybe_write(force=False)

    def flush(self) -> None:
        """Write the current total now (if it changed since the last write)."""
        with self._lock:
            self._maybe_write(force=True)

    def _maybe_write(self, *, force: bool) -> None:
        if self.path is None or self._written == self._total:
            return
        now_s = self._monotonic_s()
        if not force and now_s - self._written_at_s < self._min_interval_s:
            return
        write_units_file(self.path, self._total, self.unit)
        self._written, self._written_at_s = self._total, now_s


def _check(count: float) -> None:
    if not math.isfinite(count) or count < 0:
        raise ValueError(f"a count must be finite and >= 0; got {count!r}")


_default: UnitCounter | None = None
_default_lock = threading.Lock()


def report_units(total: float, unit: str = "steps") -> None:
    """Report the job's running ``total`` of ``unit`` now (written at once, not throttled).

    One process-wide counter per process; its unit is the first call's. Raises ValueError
    for a lower total than the last, or another unit than the first call's.
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = UnitCounter(unit, min_interval_s=0.0)
        elif _default.unit != unit:
            raise ValueError(f"this process counts {_default.unit}, not {unit}")
        counter = _default
    counter.set_total(total)

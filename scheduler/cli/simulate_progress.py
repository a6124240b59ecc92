"""``greenlight simulate``'s progress and warnings, always on stderr.

Rich bars when stderr is a terminal, else one plain line per policy at its start, at most every
``LINE_INTERVAL_S`` while it runs, and at its end. Policies replayed in worker processes report
through a queue to the parent, which feeds the same bars. The optimum's exact solve reports its
stages (the planner's incumbent, the LP bound, the MIP's best) with the gap between the best
placement found and the bound.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

if TYPE_CHECKING:
    from scheduler.simulation.cli import SolverStatus

LINE_INTERVAL_S = 10.0
WARNING_PREFIX = "greenlight: warning: "
_STAGES = {
    "incumbent": "planner's placement",
    "lp": "LP bound",
    "fixed": "MIP on LP-fractional jobs",
    "mip": "whole MIP",
    "done": "done",
}


def solver_line(status: SolverStatus) -> str:
    """``LP bound: best 12.3 kg, bound 12.1 kg, gap 1.62%`` (unknown figures left out)."""
    parts = []
    if math.isfinite(status.best_g):
        parts.append(f"best {status.best_g / 1000:,.3f} kg")
    if math.isfinite(status.bound_g):
        parts.append(f"bound {status.bound_g / 1000:,.3f} kg")
    gap = status.gap_pct
    if gap is not None:
        parts.append(f"gap {gap:.2f}%")
    stage = _STAGES.get(status.stage, status.stage)
    return f"{stage}: {', '.join(parts)}" if parts else stage


class Silent:
    """No progress at all (``--no-progress``); warnings still go to stderr."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stderr

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def report(self, label: str, done: int, total: int) -> None:
        return None

    def solver(self, status: SolverStatus) -> None:
        return None

    def warn(self, message: str) -> None:
        self._stream.write(f"{WARNING_PREFIX}{message}\n")
        self._stream.flush()


class Bars(Silent):
    """A rich bar per policy on a terminal's stderr, fed by ``(label, done, total)``; the
    optimum's bar shows the solver's stage and gap."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._bars = Progress(
            TextColumn("{task.description:>14}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=Console(file=stream),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Bars:
        self._bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bars.stop()

    def report(self, label: str, done: int, total: int) -> None:
        if label not in self._tasks:
            self._tasks[label] = self._bars.add_task(label, total=total, detail="")
        self._bars.update(self._tasks[label], completed=done, total=total)

    def solver(self, status: SolverStatus) -> None:
        if "optimum" not in self._tasks:
            self.report("optimum", 0, 1)
        self._bars.update(self._tasks["optimum"], detail=escape(solver_line(status)))

    def warn(self, message: str) -> None:
        self._bars.console.print(f"{WARNING_PREFIX}{message}", markup=False, highlight=False)


class Lines(Silent):
    """Plain progress lines for a log or a pipe: ``simulate: <label> <done>/<total> jobs``,
    per label at its start, at most every ``interval_s`` while it runs, and at its end
    (policies replayed in parallel interleave their lines); ``simulate: optimum <stage>`` per
    solver stage."""

    def __init__(self, stream: IO[str], interval_s: float = LINE_INTERVAL_S) -> None:
        super().__init__(stream)
        self._interval_s = interval_s
        # label -> (first report, last line written, count on it), monotonic seconds
        self._seen: dict[str, tuple[float, float, int]] = {}

    def report(self, label: str, done: int, total: int) -> None:
        now_s = time.monotonic()
        started_s, last_s, last_done = self._seen.get(label, (now_s, -math.inf, -1))
        if done == last_done or (done < total and now_s - last_s < self._interval_s):
            return
        self._seen[label] = (started_s, now_s, done)
        share = 100.0 * done / total if total else 100.0
        self._write(
            f"simulate: {label} {done}/{total} jobs ({share:.0f}%) {now_s - started_s:.0f} s"
        )

    def solver(self, status: SolverStatus) -> None:
        self._write(f"simulate: optimum {solver_line(status)} {status.elapsed_s:.0f} s")

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()


def reporter(*, enabled: bool, stream: IO[str] | None = None) -> Silent:
    """Bars on a terminal, lines otherwise, nothing when disabled; always on stderr."""
    stream = stream or sys.stderr
    if not enabled:
        return Silent(stream)
    return Bars(stream) if stream.isatty() else Lines(stream)

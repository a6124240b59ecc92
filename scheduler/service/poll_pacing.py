"""How often the periodic reconcile asks the cluster about one started run.

Asking about every started run every half second notices a trivial job's end within half a
second, but a cluster running 1,000 day-long jobs would get 2,000 status calls a second, all
of them answering "running". Each run is instead asked about again after a tenth of how long
it has been on the cluster, between ``fast_s`` (0.5 s) and ``max_s`` (15 s): a run's end is
noticed within a tenth of its length (at least half a second, at most 15 s: 0.4 % of an
hour-long run's slot), and 1,000 long runs cost ~70 calls a second.

The age is this process's own: a run is young when this process first sees it (after a
restart every run is asked about at once, then backs off), measured on the monotonic clock
(the demo's compressed clock would age runs 60 times too fast). Reconcile keys a run by its
submission id and the job's state, so a retry (a new submission) or a run first seen running
after a wait in the cluster's queue starts young. Pure: the caller passes the time.

A run dispatched but not yet started (queued in the cluster until a slot frees) can change
only by starting, and its runner says when it does (it exchanges its credential as it starts,
which wakes reconcile): it is asked about no more often than every ``QUEUED_FLOOR_S``, while a
run whose runner has started is asked about every pass until it is seen running. A run whose
runner cannot reach the API is still asked about at its pace, so its start and end are noticed
late, never missed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

FAST_S = 0.5
MAX_S = 15.0
SHARE = 0.1
# The reconcile loop ticks every FAST_S, never exactly: a run due "now" must not wait a tick.
SLACK_S = FAST_S / 4
QUEUED_FLOOR_S = 2.0


@dataclass
class PollPacer:
    fast_s: float = FAST_S
    max_s: float = MAX_S
    share: float = SHARE
    _first_s: dict[str, float] = field(default_factory=dict, init=False)
    _last_s: dict[str, float] = field(default_factory=dict, init=False)

    def interval_s(self, age_s: float, floor_s: float | None = None) -> float:
        """Seconds between two questions about a run that has been seen for ``age_s``; at
        least ``floor_s`` (default ``fast_s``)."""
        floor = self.fast_s if floor_s is None else floor_s
        return min(self.max_s, max(floor, age_s * self.share))

    def due(self, run: str, now_s: float, floor_s: float | None = None) -> bool:
        """Whether ``run`` should be asked about at ``now_s`` (monotonic seconds)."""
        first_s = self._first_s.setdefault(run, now_s)
        last_s = self._last_s.get(run)
        if last_s is None:
            return True
        return now_s - last_s >= self.interval_s(now_s - first_s, floor_s) - SLACK_S

    def asked(self, run: str, now_s: float) -> None:
        self._last_s[run] = now_s

    def keep_only(self, runs: Collection[str]) -> None:
        """Forget runs no longer started (ended, or moved on to another attempt)."""
        live = set(runs)
        for book in (self._first_s, self._last_s):
            for run in [r for r in book if r not in live]:
                del book[run]

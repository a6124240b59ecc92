"""The plan cycle's job table, kept between cycles and brought up to date incrementally.

The first cycle (and every ``RESYNC_S``) reads every plannable job, only the columns planning
needs. Later cycles list the rows whose ``updated_at`` moved since the last read (less a margin
for clocks of other replicas and transactions that committed late; id and stamp only), drop
those that left the plannable states or went into quarantine, and read again only those whose
stamp differs from the table's (the cycle's own writes are recorded with their stamp). A count
of the plannable rows, read in the same snapshot, guards the result: any disagreement (a row
written with an old ``updated_at``) makes the next read a full one.

It also remembers why each job was late in the last cycle (``late_changes``), so a job's
'late' warning is written once per change of its reason, not every cycle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from scheduler.domain import Job, JobState
from scheduler.planning.snapshot import PlanningJob
from scheduler.ports import PlanStore

# Rows stamped up to this long before the last read are read again (clock skew between
# replicas, a transaction that stamped its rows and committed later).
CHANGE_MARGIN = timedelta(seconds=60)
RESYNC_S = 600.0


class JobTable:
    """Plannable jobs by id, refreshed from the store once per cycle. Thread-safe."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._read_at: datetime | None = None
        self._full_at_s = 0.0
        self._late: dict[str, str] = {}
        self._converted: dict[str, tuple[Job, PlanningJob]] = {}
        self._lock = threading.Lock()

    def refresh(self, store: PlanStore, now: datetime) -> list[Job]:
        """The plannable jobs not in quarantine as of ``now`` (aware UTC)."""
        with self._lock:
            stale = time.monotonic() - self._full_at_s > RESYNC_S
            if self._read_at is None or now < self._read_at or stale:
                self._full(store, now)
            else:
                changes = store.planning_changes(self._read_at - CHANGE_MARGIN, self._current)
                for job_id in changes.gone:
                    self._jobs.pop(job_id, None)
                self._jobs.update((j.id, j) for j in changes.jobs)
                self._read_at = now
                if changes.count != len(self._jobs):
                    self._full(store, now)
            return list(self._jobs.values())

    def _current(self, job_id: str, updated_at: datetime, state: JobState) -> bool:
        known = self._jobs.get(job_id)  # two writes may share a stamp: the state tells them
        return known is not None and known.updated_at == updated_at and known.state is state

    def forget(self, job_ids: set[str]) -> None:
        """Drop jobs the cycle set aside; the store's quarantine keeps them out afterwards."""
        with self._lock:
            for job_id in job_ids:
                self._jobs.pop(job_id, None)

    def update(self, jobs: list[Job]) -> None:
        """Record what the cycle itself wrote (new plans), so its next read starts from it."""
        with self._lock:
            self._jobs.update((j.id, j) for j in jobs if j.id in self._jobs)

    def converted(
        self, jobs: Sequence[Job], convert: Callable[[Job], PlanningJob]
    ) -> list[PlanningJob]:
        """``convert`` of each of ``jobs``, reused from the last cycle for a job that did not
        change (the same ``Job`` object: the table replaces a job's object when it changes).
        Raises what ``convert`` raises; then nothing is remembered."""
        with self._lock:
            known = self._converted
            fresh: dict[str, tuple[Job, PlanningJob]] = {}
            for job in jobs:
                hit = known.get(job.id)
                fresh[job.id] = hit if hit is not None and hit[0] is job else (job, convert(job))
            self._converted = fresh
            return [fresh[job.id][1] for job in jobs]

    def late_changes(self, late: Mapping[str, str]) -> dict[str, str]:
        """The jobs of ``late`` (id -> reason) that were not late in the last cycle or were
        late for another reason; ``late`` becomes the last cycle's. A job no longer late is
        forgotten, so it is reported again should it become late again. A new process
        reports each late job once more (the memory is per process)."""
        with self._lock:
            changed = {i: r for i, r in late.items() if self._late.get(i) != r}
            self._late = dict(late)
            return changed

    def _full(self, store: PlanStore, now: datetime) -> None:
        self._jobs = {j.id: j for j in store.planning_jobs()}
        self._read_at = now
        self._full_at_s = time.monotonic()

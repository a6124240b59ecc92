"""Regions as the clusters report them: each region's GPUs are the smaller of its configured cap
and what Ray's live nodes (its node group's, for a labelled region) offer.

:class:`LiveRegions` is the ``ServiceContext.regions`` mapping: every reader (submit-time
validation, the planner's snapshot, ``/v1/regions``) sees the effective capacity, so a GPU job
on a cluster without GPUs is refused at submit with a reason instead of waiting forever in
``dispatched``. ``refresh`` asks each cluster once (a periodic job calls it each cycle); a
cluster that does not answer keeps its last known capacity, so an outage never shrinks a region
to nothing and no request path ever waits on Ray.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Protocol

from scheduler.domain import DispatchError, Region
from scheduler.domain.capacity import ClusterCapacity

log = logging.getLogger(__name__)


class CapacityReader(Protocol):
    def capacity(self, region: Region) -> ClusterCapacity:
        """What the region's live nodes offer in total. Raises DispatchError."""
        ...


class LiveRegions(Mapping[str, Region]):
    """The configured regions, with ``gpus`` capped by what the cluster last reported.

    Reads are lock-free (the whole mapping is swapped on refresh); ``refresh`` may run from
    any thread. ``reported`` holds the last capacity read per region.
    """

    def __init__(self, configured: Mapping[str, Region], reader: CapacityReader) -> None:
        self._configured = dict(configured)
        self._reader = reader
        self._effective: dict[str, Region] = dict(configured)
        self.reported: dict[str, ClusterCapacity] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Region:
        return self._effective[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._effective)

    def __len__(self) -> int:
        return len(self._effective)

    def refresh(self) -> dict[str, str]:
        """Read every region's capacity from its cluster; returns the errors by region name
        (those regions keep their last known capacity)."""
        errors: dict[str, str] = {}
        with self._lock:
            for name, region in self._configured.items():
                try:
                    self.reported[name] = self._reader.capacity(region)
                except DispatchError as e:
                    errors[name] = str(e)
                    log.warning("capacity of %s unknown, keeping the last: %s", name, e)
            effective = {
                name: effective_region(region, self.reported.get(name))
                for name, region in self._configured.items()
            }
            for name, region in effective.items():
                if region.gpus != self._effective[name].gpus:
                    log.info(
                        "region %s now offers %d GPU(s) (configured %d)",
                        name,
                        region.gpus,
                        self._configured[name].gpus,
                    )
            self._effective = effective
        return errors


def effective_region(configured: Region, reported: ClusterCapacity | None) -> Region:
    """``configured`` with its GPUs capped by ``reported`` (whole GPUs only: the planner
    places whole GPUs); unchanged while nothing was reported."""
    if reported is None:
        return configured
    gpus = min(configured.gpus, math.floor(reported.gpus + 1e-9))
    return configured if gpus == configured.gpus else replace(configured, gpus=gpus)

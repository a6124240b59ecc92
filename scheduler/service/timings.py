"""How long each cycle takes: cumulative histogram buckets per cycle name, for ``/metrics``.

Durations are measured by the caller (``time.perf_counter`` around the call, in the service
facade, an adapter edge) and recorded here; the planning core never reads a clock.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleHistogram:
    """Prometheus-style cumulative buckets: ``counts[i]`` cycles took <= ``BUCKETS_S[i]``."""

    cycle: str
    counts: tuple[int, ...]
    count: int
    sum_s: float


class CycleTimings:
    """Thread-safe: cycles run on APScheduler's threads while the API scrapes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, list[int]] = {}
        self._sum_s: dict[str, float] = {}

    def record(self, cycle: str, duration_s: float) -> None:
        with self._lock:
            buckets = self._buckets.setdefault(cycle, [0] * (len(BUCKETS_S) + 1))
            buckets[bisect.bisect_left(BUCKETS_S, duration_s)] += 1
            self._sum_s[cycle] = self._sum_s.get(cycle, 0.0) + duration_s

    @contextmanager
    def time(self, cycle: str) -> Iterator[None]:
        """Record how long the block took, whether it returned or raised."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.record(cycle, time.perf_counter() - began)

    def snapshot(self) -> list[CycleHistogram]:
        with self._lock:
            out = []
            for cycle, buckets in sorted(self._buckets.items()):
                cumulative, running = [], 0
                for n in buckets[:-1]:
                    running += n
                    cumulative.append(running)
                out.append(
                    CycleHistogram(
                        cycle=cycle,
                        counts=tuple(cumulative),
                        count=sum(buckets),
                        sum_s=self._sum_s[cycle],
                    )
                )
            return out

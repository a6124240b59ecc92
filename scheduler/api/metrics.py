"""Prometheus metrics for one app: request count and latency by route, plus service gauges.

Each app has its own registry (no process-global state), so several apps can live in one
process (tests, replicas behind one worker). Route labels are path templates
(``/v1/jobs/{job_id}``), never raw paths, so label cardinality stays bounded.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from scheduler.domain import Principal, Role
from scheduler.service.timings import BUCKETS_S

if TYPE_CHECKING:
    from scheduler.service import GreenlightService

logger = logging.getLogger(__name__)

PREFIX = "greenlight_"
_NOT_A_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_:]")
# A gauge key is a name, optionally with labels: ``greenlight_jobs{state="pending"}``.
_KEY = re.compile(r"^(?P<name>[^{]+)(?:\{(?P<labels>.*)\})?$")
_LABEL = re.compile(r'\s*(?P<key>[a-zA-Z_]\w*)\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*,?')
# The savings totals cost a report query: read once per this many seconds at most.
SAVINGS_TTL_S = 300.0
_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def parse_gauge_key(key: str) -> tuple[str, dict[str, str]]:
    """A service gauge key -> (metric name, labels).

    ``greenlight_jobs{state="pending"}`` -> ``("greenlight_jobs", {"state": "pending"})``;
    ``jobs.pending`` -> ``("greenlight_jobs_pending", {})``. Names get the ``greenlight_``
    prefix if they lack it and any character Prometheus refuses becomes ``_``.
    """
    match = _KEY.match(key.strip())
    name = match.group("name") if match else key
    name = _NOT_A_NAME_CHAR.sub("_", name.strip())
    if not name.startswith(PREFIX):
        name = PREFIX + name
    labels = (
        {m.group("key"): m.group("value") for m in _LABEL.finditer(match.group("labels") or "")}
        if match
        else {}
    )
    return name, labels


class _ServiceGauges(Collector):
    """Reads ``service.metrics_snapshot()`` at scrape time; a failing read is a 0 ``up`` gauge,
    never a failed scrape, so HTTP metrics still arrive while the database is down."""

    def __init__(self, service: GreenlightService, savings_ttl_s: float = SAVINGS_TTL_S) -> None:
        self._service = service
        self._savings_ttl_s = savings_ttl_s
        self._savings: tuple[float, float, float] | None = None  # (read at, saved g, kWh)
        self._savings_lock = threading.Lock()

    def _savings_totals(self) -> tuple[float, float] | None:
        """All tenants' grams saved and kWh measured, from the savings report (summed in SQL
        at scale), read at most once per ``savings_ttl_s`` so scrapes stay cheap."""
        with self._savings_lock:
            now_s = time.monotonic()
            if self._savings is None or now_s - self._savings[0] > self._savings_ttl_s:
                admin = Principal(tenant="metrics", role=Role.ADMIN, token_id="metrics")
                total = self._service.savings_report(admin).total
                self._savings = (now_s, total.saved_g, total.energy_kwh)
            return self._savings[1], self._savings[2]

    def _savings_families(self) -> Iterator[Metric]:
        try:
            totals = self._savings_totals()
        except Exception:  # same rule as the snapshot: a scrape never fails
            logger.warning("savings totals read failed", exc_info=True)
            return
        if totals is None:
            return
        saved_g, energy_kwh = totals
        saved = GaugeMetricFamily(
            PREFIX + "emissions_saved_grams",
            "gCO2e saved against running every job at once at home (all tenants)",
        )
        saved.add_metric([], saved_g)
        measured = GaugeMetricFamily(
            PREFIX + "energy_measured_kwh", "Energy reported by workers for all jobs, kWh"
        )
        measured.add_metric([], energy_kwh)
        yield saved
        yield measured

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = self._service.metrics_snapshot()
        except Exception:  # the scrape must survive any service fault; the log keeps it
            logger.warning("metrics snapshot failed", exc_info=True)
            snapshot = None
        up = GaugeMetricFamily(
            PREFIX + "service_snapshot_up", "1 if the service's gauges could be read at this scrape"
        )
        up.add_metric([], 0.0 if snapshot is None else 1.0)
        yield up
        yield from _families(snapshot or {})
        if snapshot is not None:
            yield from self._forecast_age()
            yield from self._savings_families()
        yield self._cycle_durations()

    def _cycle_durations(self) -> Metric:
        family = HistogramMetricFamily(
            PREFIX + "cycle_duration_seconds",
            "Wall time of each scheduler cycle (plan, dispatch, reconcile, refresh), seconds",
            labels=["cycle"],
        )
        for hist in self._service.timings.snapshot():
            buckets = [
                (str(bound), float(count))
                for bound, count in zip(BUCKETS_S, hist.counts, strict=True)
            ]
            buckets.append(("+Inf", float(hist.count)))
            family.add_metric([hist.cycle], buckets, hist.sum_s)
        return family

    def _forecast_age(self) -> Iterator[Metric]:
        """Seconds since each region's latest forecast was issued (scheduler time); a region
        that never had one is absent rather than a made-up number."""
        family = GaugeMetricFamily(
            PREFIX + "forecast_age_seconds",
            "Age of each region's latest carbon-intensity forecast, seconds",
            labels=["region", "zone"],
        )
        try:
            now = self._service.ctx.clock.now()
            statuses = self._service.regions()
        except Exception:  # same rule as the snapshot: a scrape never fails
            logger.warning("forecast age read failed", exc_info=True)
            return
        for status in statuses:
            if status.last_refresh is not None:
                age_s = (now - status.last_refresh).total_seconds()
                family.add_metric([status.region.name, status.region.grid_zone], age_s)
        yield family


def _families(snapshot: dict[str, float]) -> Iterator[Metric]:
    """Group labelled keys into one family per name; a family's label names must agree, so a
    key whose labels differ from its family's first key is skipped rather than break a scrape."""
    grouped: dict[str, list[tuple[dict[str, str], float]]] = {}
    for key, value in snapshot.items():
        name, labels = parse_gauge_key(key)
        grouped.setdefault(name, []).append((labels, float(value)))
    for name in sorted(grouped):
        samples = grouped[name]
        label_names = sorted(samples[0][0])
        family: GaugeMetricFamily | CounterMetricFamily
        if name.endswith("_total"):
            # The service's counters only grow (per process): typed as counters, so rate()
            # and increase() work; the client adds the "_total" suffix back on exposition.
            family = CounterMetricFamily(
                name.removesuffix("_total"), f"service counter {name}", labels=label_names
            )
        else:
            family = GaugeMetricFamily(name, f"service gauge {name}", labels=label_names)
        for labels, value in samples:
            if sorted(labels) == label_names:
                family.add_metric([labels[k] for k in label_names], value)
        yield family


class ApiMetrics:
    """The app's registry, its HTTP instruments and the service gauges."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, service: GreenlightService) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            PREFIX + "http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._latency_s = Histogram(
            PREFIX + "http_request_duration_seconds",
            "HTTP request latency, seconds",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(_ServiceGauges(service))

    def observe(self, method: str, route: str, status: int, duration_s: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        self._latency_s.labels(method, route).observe(duration_s)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

"""Prometheus metrics for one app: request count and latency by route, plus service gauges.

Each app has its own registry (no process-global state), so several apps can live in one
process (tests, replicas behind one worker). Route labels are path templates
(``/v1/jobs/{job_id}``), never raw paths, so label cardinality stays bounded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from scheduler.service import GreenlightService

logger = logging.getLogger(__name__)

PREFIX = "greenlight_"
_NOT_A_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_:]")
# A gauge key is a name, optionally with labels: ``greenlight_jobs{state="pending"}``.
_KEY = re.compile(r"^(?P<name>[^{]+)(?:\{(?P<labels>.*)\})?$")
_LABEL = re.compile(r'\s*(?P<key>[a-zA-Z_]\w*)\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*,?')
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

    def __init__(self, service: GreenlightService) -> None:
        self._service = service

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

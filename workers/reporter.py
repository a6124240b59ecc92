"""Sends energy reports to the Greenlight API from a background thread, never failing the job.

Reports wait in a bounded buffer and go out in batches. A failed POST (connection error,
timeout, 408/425/429/5xx) is retried with capped exponential backoff and jitter; because the
server deduplicates by ``(job_id, attempt, device, interval_start)``, a resend carries exactly
the same intervals and can never count energy twice. 401/403/404 mean this job may never
report (wrong token, unknown job), so reporting stops; other 4xx drop that batch. At exit
:meth:`EnergyReporter.close` keeps trying, with backoff, until its deadline (the runner's
``--flush-timeout-s``, 120 s by default: an outage that long loses nothing over HTTP), then
gives up and says so.

Every report is also written, as it is made, as one line ``GREENLIGHT_ENERGY {json}`` on the
job's stdout (``ENERGY_LINE_PREFIX``; the JSON is the POST body's report plus ``job_id``). The
cluster keeps the job's log, and the scheduler's reconcile reads those lines back when the
attempt ends, storing any the API never received (the key makes the others duplicates). So
no report is lost to an outage longer than the exit retries, nor when the worker could not
get its token at all (``target=None``: lines only).
"""

from __future__ import annotations

import collections
import json
import sys
import threading
import time
from collections.abc import Sequence
from enum import Enum
from typing import Any, NamedTuple, TextIO
from urllib.parse import quote

from workers import http_post
from workers.intervals import IntervalReport
from workers.jsonlog import get_logger

logger = get_logger(__name__)

ENERGY_LINE_PREFIX = "GREENLIGHT_ENERGY "  # scheduler.service.energy_log.PREFIX
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_FATAL_STATUS = frozenset({401, 403, 404})


class ApiTarget(NamedTuple):
    """Where and as whom to report: ``POST {api_url}/v1/jobs/{job_id}/energy``."""

    api_url: str
    job_id: str
    token: str

    @property
    def energy_url(self) -> str:
        return f"{self.api_url.rstrip('/')}/v1/jobs/{quote(self.job_id, safe='')}/energy"


class RetryPolicy(NamedTuple):
    """Backoff (seconds) and sizes. Timeouts are ``(connect, read)`` pairs."""

    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    connect_timeout_s: float = 3.05
    read_timeout_s: float = 10.0
    batch_max: int = 500
    buffer_max: int = 100_000
    # At exit, tries back off up to this long apart (an outage may last a while).
    exit_max_s: float = 5.0


class ReporterStats:
    """Counts of reports: ``accepted``/``duplicates`` as the server said, ``dropped`` never
    delivered (refused, overflow or given up), ``failed_posts`` POSTs that will be retried."""

    __slots__ = ("accepted", "dropped", "duplicates", "failed_posts", "pending")

    def __init__(
        self,
        *,
        accepted: int = 0,
        duplicates: int = 0,
        dropped: int = 0,
        failed_posts: int = 0,
        pending: int = 0,
    ) -> None:
        self.accepted = accepted
        self.duplicates = duplicates
        self.dropped = dropped
        self.failed_posts = failed_posts
        self.pending = pending

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReporterStats) and self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"ReporterStats({', '.join(f'{k}={v}' for k, v in self.as_dict().items())})"

    def as_dict(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "dropped": self.dropped,
            "failed_posts": self.failed_posts,
            "pending": self.pending,
        }


class _Outcome(Enum):
    SENT = "sent"
    RETRY = "retry"
    DROP = "drop"
    STOP = "stop"


class EnergyReporter:
    """Background sender of :class:`IntervalReport` batches to one job's energy endpoint."""

    def __init__(
        self,
        target: ApiTarget | None,
        *,
        policy: RetryPolicy | None = None,
        job_id: str | None = None,
        lines: TextIO | None = None,
    ) -> None:
        """``target`` None: no POSTs, only the log lines (the worker has no token). The lines
        go to ``lines`` (default: stdout) and name ``job_id`` (default: the target's)."""
        self._target = target
        self._job_id = job_id or (target.job_id if target else None)
        self._lines = lines
        self._policy = policy or RetryPolicy()
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._pending: collections.deque[IntervalReport] = collections.deque()
        self._stats = ReporterStats()
        self._closing = False
        self._deadline_s = float("inf")
        self._disabled = False
        self._thread = threading.Thread(target=self._run, name="energy-reporter", daemon=True)
        self._thread.start()

    def submit(self, reports: Sequence[IntervalReport]) -> None:
        """Write each report's log line and queue it for sending; never blocks on the
        network."""
        self._write_lines(reports)
        if self._target is None:
            return  # lines only: the log is where these go
        with self._cond:
            if self._disabled:
                self._stats.dropped += len(reports)
                return
            self._pending.extend(reports)
            overflow = len(self._pending) - self._policy.buffer_max
            if overflow > 0:
                for _ in range(overflow):
                    self._pending.popleft()
                self._stats.dropped += overflow
                logger.error("report buffer full: dropped the %d oldest reports", overflow)
            self._cond.notify()

    def close(self, deadline_s: float) -> ReporterStats:
        """Send what is queued, trying for at most ``deadline_s`` seconds (plus one read
        timeout for a POST already in flight), then stop; at once when nothing is queued or
        there is no target. Returns the final counts."""
        with self._cond:
            self._closing = True
            if self._target is None or self._disabled:
                deadline_s = 0.0
            self._deadline_s = time.monotonic() + deadline_s
            self._cond.notify()
        self._wake.set()
        self._thread.join(deadline_s + self._policy.read_timeout_s + 1.0)
        with self._cond:
            left = len(self._pending)
            if left:
                logger.error(
                    "gave up on %d energy reports at exit",
                    left,
                    extra={"fields": {"event": "reports_abandoned", "count": left}},
                )
                self._stats.dropped += left
                self._pending.clear()
            self._stats.pending = 0
            stats = ReporterStats(**self._stats.as_dict())
        return stats

    @property
    def stats(self) -> ReporterStats:
        with self._cond:
            return ReporterStats(**{**self._stats.as_dict(), "pending": len(self._pending)})

    # -- sender thread --------------------------------------------------------------------

    def _run(self) -> None:
        delay_s = self._policy.initial_s
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            outcome = self._post(batch)
            if outcome is _Outcome.SENT:
                delay_s = self._policy.initial_s
                continue
            if outcome is _Outcome.RETRY:
                with self._cond:
                    self._pending.extendleft(reversed(batch))
                self._backoff(delay_s)
                delay_s = min(delay_s * self._policy.multiplier, self._policy.max_s)
                continue
            with self._cond:
                self._stats.dropped += len(batch)
                if outcome is _Outcome.STOP:
                    self._disabled = True
                    self._stats.dropped += len(self._pending)
                    self._pending.clear()
                    return

    def _next_batch(self) -> list[IntervalReport] | None:
        """Take up to batch_max reports; None when closing and done (or out of time)."""
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if not self._pending or time.monotonic() >= self._deadline_s:
                return None
            size = min(len(self._pending), self._policy.batch_max)
            return [self._pending.popleft() for _ in range(size)]

    def _backoff(self, delay_s: float) -> None:
        wait_s = http_post.jittered(delay_s)
        with self._cond:
            if self._closing:
                # At exit, back off (an outage may last a while) but never past the deadline.
                left_s = max(0.0, self._deadline_s - time.monotonic())
                wait_s = min(wait_s, self._policy.exit_max_s, left_s)
        if self._wake.wait(wait_s):
            self._wake.clear()

    def _write_lines(self, reports: Sequence[IntervalReport]) -> None:
        """One ``GREENLIGHT_ENERGY {json}`` line per report, each in one write (atomic on a
        pipe), flushed at once: the log is the copy that survives an outage."""
        if self._job_id is None or not reports:
            return
        stream = self._lines or sys.stdout
        try:
            for report in reports:
                body = json.dumps(
                    {"job_id": self._job_id, **report.to_json()}, separators=(",", ":")
                )
                stream.write(f"{ENERGY_LINE_PREFIX}{body}\n")
            stream.flush()
        except (OSError, ValueError) as e:  # a closed stdout must not fail the job
            logger.warning("could not write energy lines to the log: %s", e)

    def _timeout(self) -> tuple[float, float]:
        read_s = self._policy.read_timeout_s
        with self._cond:
            if self._closing:
                read_s = min(read_s, max(0.5, self._deadline_s - time.monotonic()))
        return (self._policy.connect_timeout_s, read_s)

    def _post(self, batch: list[IntervalReport]) -> _Outcome:
        body = {"reports": [r.to_json() for r in batch]}
        target = self._target
        if target is None:  # never queued without a target; nothing to post to
            return _Outcome.DROP
        try:
            response = http_post.post(
                target.energy_url, token=target.token, body=body, timeout=self._timeout()
            )
        except http_post.TransportError as e:
            return self._failed(len(batch), str(e))
        status = response.status
        if 200 <= status < 300:
            self._record_sent(batch, response.json_object())
            return _Outcome.SENT
        if status in _RETRY_STATUS:
            return self._failed(len(batch), f"HTTP {status}")
        detail = response.text[:300]
        if status in _FATAL_STATUS:
            logger.error(
                "the API refused this job's reports (HTTP %s): %s; reporting stops", status, detail
            )
            return _Outcome.STOP
        logger.error("the API rejected %d reports (HTTP %s): %s", len(batch), status, detail)
        return _Outcome.DROP

    def _failed(self, count: int, why: str) -> _Outcome:
        with self._cond:
            self._stats.failed_posts += 1
        logger.warning("posting %d energy reports failed (%s); will retry", count, why)
        return _Outcome.RETRY

    def _record_sent(self, batch: list[IntervalReport], answer: dict[str, Any]) -> None:
        try:
            accepted = int(answer.get("accepted", len(batch)))
            duplicates = int(answer.get("duplicates", 0))
        except (TypeError, ValueError):
            accepted, duplicates = len(batch), 0
        with self._cond:
            self._stats.accepted += accepted
            self._stats.duplicates += duplicates
        logger.debug(
            "sent %d reports: %d accepted, %d duplicates", len(batch), accepted, duplicates
        )

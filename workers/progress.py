"""Sends a job's functional-unit total (``workers.units``) to the Greenlight API.

The job's code writes its running total to the units file; the runner calls :meth:`poll`
with each energy cut and at exit, and a background thread posts the latest total to
``POST {api}/v1/jobs/{id}/progress`` with the attempt's token. Only the newest total matters
(the server keeps a monotone total per attempt), so a failed POST is not queued: the next try
sends whatever is newest then. 401/403/404 stop reporting (this attempt may not report);
409 means the server already holds a total this one cannot replace, also final. Other failures
are retried with capped exponential backoff; :meth:`close` keeps trying until its deadline.
Never raises into the runner: the job's result does not depend on this.

Every new total read is also written, at once, as one line ``GREENLIGHT_UNITS {json}`` on the
job's stdout (``UNITS_LINE_PREFIX``; ``job_id``, ``attempt``, ``units``, ``unit``): the cluster
keeps the log, and the scheduler's reconcile reads the highest total back when the attempt ends
(``scheduler.service.energy_log``), so a count the API never received (an outage at exit, no
token at all) still reaches the store. The last line is the final count.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import NamedTuple, TextIO
from urllib.parse import quote

from workers import http_post
from workers.jsonlog import get_logger
from workers.reporter import ApiTarget, RetryPolicy
from workers.units import read_units_file

logger = get_logger(__name__)

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
UNITS_LINE_PREFIX = "GREENLIGHT_UNITS "  # scheduler.service.energy_log.UNITS_PREFIX


def progress_url(target: ApiTarget) -> str:
    return f"{target.api_url.rstrip('/')}/v1/jobs/{quote(target.job_id, safe='')}/progress"


class ProgressState(NamedTuple):
    """The newest total read (``units``/``unit``, None before the job wrote one) and the
    newest the API accepted (``sent``)."""

    units: float | None
    unit: str | None
    sent: float | None


class ProgressReporter:
    """Reads ``path`` on :meth:`poll`; posts new totals for ``attempt`` to ``target`` (None:
    read only, for the runner's summary) and writes them to ``lines`` (default stdout) as
    ``GREENLIGHT_UNITS`` lines for ``job_id`` (default the target's; None: no lines)."""

    def __init__(
        self,
        target: ApiTarget | None,
        path: Path,
        *,
        attempt: int,
        policy: RetryPolicy | None = None,
        job_id: str | None = None,
        lines: TextIO | None = None,
    ) -> None:
        self.path = path
        self._target = target
        self._attempt = attempt
        self._job_id = job_id if job_id is not None else (target.job_id if target else None)
        self._lines = lines
        self._policy = policy or RetryPolicy()
        self._cond = threading.Condition()
        self._units: float | None = None
        self._unit: str | None = None
        self._sent: float | None = None
        self._stopped = target is None
        self._closing = False
        self._thread: threading.Thread | None = None
        if target is not None:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()

    @property
    def state(self) -> ProgressState:
        with self._cond:
            return ProgressState(units=self._units, unit=self._unit, sent=self._sent)

    def poll(self) -> None:
        """Read the units file; a higher total than the last read wakes the sender."""
        read = read_units_file(self.path)
        if read is None:
            return
        units, unit = read
        with self._cond:
            if self._units is not None and units <= self._units:
                return
            self._units, self._unit = units, unit
            self._cond.notify_all()
        self._write_line(units, unit)

    def _write_line(self, units: float, unit: str) -> None:
        """One ``GREENLIGHT_UNITS`` line, in one write (atomic on a pipe), flushed at once."""
        if self._job_id is None:
            return
        body = {"job_id": self._job_id, "attempt": self._attempt, "units": units, "unit": unit}
        stream = self._lines or sys.stdout
        try:
            stream.write(f"{UNITS_LINE_PREFIX}{json.dumps(body, separators=(',', ':'))}\n")
            stream.flush()
        except (OSError, ValueError) as e:  # a closed stdout must not fail the job
            logger.warning("could not write the unit count to the log: %s", e)

    def close(self, deadline_s: float) -> ProgressState:
        """Read the file a last time and try for at most ``deadline_s`` seconds to deliver it."""
        self.poll()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(deadline_s)
            with self._cond:
                self._stopped = True  # a sender still inside a POST posts nothing after it
                self._cond.notify_all()
            if self._units is not None and self._sent != self._units:
                logger.error("could not deliver the final unit count %s", self._units)
        return self.state

    def _pending(self) -> tuple[float, str] | None:
        if self._units is None or self._unit is None or self._sent == self._units:
            return None
        return self._units, self._unit

    def _run(self) -> None:
        delay_s = self._policy.initial_s
        while True:
            with self._cond:
                while not self._stopped and self._pending() is None and not self._closing:
                    self._cond.wait()
                pending = self._pending()
                if self._stopped or pending is None:
                    return  # stopped, or closing with nothing left to send
            outcome = self._post(*pending)
            with self._cond:
                if outcome == "sent":
                    self._sent = max(self._sent or 0.0, pending[0])
                    delay_s = self._policy.initial_s
                    continue
                if outcome == "stop":
                    self._stopped = True
                    return
                # A retry: wait (or until stopped), backing off; at exit more briskly.
                cap_s = self._policy.exit_max_s if self._closing else self._policy.max_s
                self._cond.wait(http_post.jittered(min(delay_s, cap_s)))
                delay_s = min(delay_s * self._policy.multiplier, cap_s)

    def _post(self, units: float, unit: str) -> str:
        assert self._target is not None
        body = {"attempt": self._attempt, "units": units, "unit": unit}
        try:
            response = http_post.post(
                progress_url(self._target),
                token=self._target.token,
                body=body,
                timeout=(self._policy.connect_timeout_s, self._policy.read_timeout_s),
            )
        except http_post.TransportError as e:
            logger.warning("posting progress failed (%s); will retry", e)
            return "retry"
        if response.status == 200:
            return "sent"
        if response.status in _RETRY_STATUS:
            logger.warning("posting progress: %d; will retry", response.status)
            return "retry"
        logger.error("progress reporting stops: %d %s", response.status, response.text[:200])
        return "stop"

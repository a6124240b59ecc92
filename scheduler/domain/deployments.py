"""Deployments: where a long-running service answers, and its moves between regions.

A move is blue/green. The new copy is the job's next attempt (its own submission id, worker
credential and energy reports), started in the target region while the old copy keeps serving.
Once the new copy's endpoint passes its health check the recorded endpoint and region switch
to it; the old copy drains, is stopped, and the move is over. A move in flight is a ``Move``
stored on the job (the store, not a process, holds it, so a restart mid-move carries on); a
finished one is a ``Relocation`` in the job's history, with the saving it was expected to make.

Attempts: the n-th of a job's state events into ``dispatched`` or ``relocating`` starts attempt
n; an attempt's run ends at the job's first transition out of the running states after it, or
at a ``copy-stopped`` event naming it (one copy of two stopped while the job runs on).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from scheduler.domain.errors import GreenlightError, InvalidJobSpec

COPY_STOPPED = "copy-stopped"
MAX_ENDPOINT_CHARS = 512
_STOPPED_RE = re.compile(r"^attempt (\d+) ")


class MovePhase(enum.StrEnum):
    STARTING = "starting"  # the new copy starts; the old one serves
    DRAINING = "draining"  # switched to the new copy; the old one drains, then stops


@dataclass(frozen=True, slots=True, kw_only=True)
class Move:
    """A move in flight. ``submitted``: the new copy reached the cluster (else a restart submits
    it again, under the same submission id). ``health_deadline``: the new copy must pass its
    health check by then. ``drain_until``: set at the switch; the old copy stops after it.
    Grams are over ``horizon_s``, from the forecast the decision used."""

    phase: MovePhase
    from_region: str
    to_region: str
    old_attempt: int
    old_submission_id: str
    new_attempt: int
    new_submission_id: str
    started_at: datetime
    health_deadline: datetime
    expected_saving_g: float
    expected_saving_pct: float
    stay_g: float
    move_g: float
    horizon_s: float
    submitted: bool = False
    switched_at: datetime | None = None
    drain_until: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Relocation:
    """A completed move: started at ``started_at``, serving from the new region since
    ``switched_at``, the old copy stopped at ``finished_at``."""

    from_region: str
    to_region: str
    old_attempt: int
    new_attempt: int
    started_at: datetime
    switched_at: datetime
    finished_at: datetime
    expected_saving_g: float
    expected_saving_pct: float
    horizon_s: float


def completed(move: Move, finished_at: datetime) -> Relocation:
    """``move`` as history, its old copy stopped at ``finished_at``."""
    return Relocation(
        from_region=move.from_region,
        to_region=move.to_region,
        old_attempt=move.old_attempt,
        new_attempt=move.new_attempt,
        started_at=move.started_at,
        switched_at=move.switched_at or finished_at,
        finished_at=finished_at,
        expected_saving_g=move.expected_saving_g,
        expected_saving_pct=move.expected_saving_pct,
        horizon_s=move.horizon_s,
    )


def serving_attempt(submission_id: str | None, attempt: int) -> int:
    """The attempt whose copy serves: the one of the recorded submission id (``<job>-<n>``),
    which lags the job's attempt count while a move is in flight or after one rolled back."""
    if submission_id:
        tail = submission_id.rpartition("-")[2]
        if tail.isdigit():
            return int(tail)
    return attempt


def copy_stopped_reason(attempt: int, why: str) -> str:
    """The reason of a ``copy-stopped`` event; ``stopped_attempt`` reads the attempt back."""
    return f"attempt {attempt} stopped: {why}"


def stopped_attempt(kind: str, reason: str) -> int | None:
    """The attempt a ``copy-stopped`` event ended, None for any other event."""
    if kind != COPY_STOPPED:
        return None
    match = _STOPPED_RE.match(reason)
    return int(match.group(1)) if match else None


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` stripped of a trailing slash: an absolute http(s) URL with a host and no
    query, at most MAX_ENDPOINT_CHARS. Raises InvalidJobSpec saying what is wrong."""
    text = endpoint.strip().rstrip("/")
    if not text or len(text) > MAX_ENDPOINT_CHARS:
        raise InvalidJobSpec("endpoint", f"must be 1 to {MAX_ENDPOINT_CHARS} characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise InvalidJobSpec("endpoint", f"is not a URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidJobSpec("endpoint", "must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or any(c.isspace() for c in text):
        raise InvalidJobSpec("endpoint", "must not hold a query, fragment or spaces")
    if port == 0:
        raise InvalidJobSpec("endpoint", "port 0 is not a port anything listens on")
    return text


class EndpointConflict(GreenlightError):
    """An endpoint report the job cannot take: not a deployment, a finished job, or an attempt
    whose copy does not serve (it was stopped, or a move replaced it)."""

    def __init__(self, job_id: str, why: str) -> None:
        super().__init__(f"job {job_id}: {why}")
        self.job_id = job_id


def attempt_region(relocations: tuple[Relocation, ...], attempt: int, current: str) -> str:
    """The region ``attempt``'s copy ran in, from the job's completed moves: the target of the
    last move whose new copy it is or follows, the first move's origin before any, and the
    job's ``current`` region from the last move's new copy on (a later retry runs where the job
    is). A rolled-back copy, not in the history, counts where its job was."""
    if not relocations or attempt >= relocations[-1].new_attempt:
        return current
    region = relocations[0].from_region
    for moved in relocations:
        if moved.new_attempt <= attempt:
            region = moved.to_region
    return region

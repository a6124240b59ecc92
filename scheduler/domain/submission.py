"""A job about to be stored by a batch submit: its spec as given and what validation and the
service filled in, without building a ``Job`` per spec (a sweep of 10,000 pays for every copy)."""

from __future__ import annotations

from typing import NamedTuple

from scheduler.domain.jobs import JobSpec


class PendingJob(NamedTuple):
    """A new pending job: ``spec`` as submitted, with ``allowed_regions``, ``expected_power_w``
    and ``group_id`` replacing the spec's (validation and the service fill them in)."""

    id: str
    spec: JobSpec
    allowed_regions: tuple[str, ...]
    expected_power_w: float
    group_id: str | None

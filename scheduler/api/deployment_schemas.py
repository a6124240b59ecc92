"""API schemas of deployments: endpoints and moves between regions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from scheduler.domain import JobState
from scheduler.domain.deployments import MAX_ENDPOINT_CHARS, Relocation


class EndpointIn(BaseModel):
    """Where the worker's copy answers: an absolute http(s) URL reachable from the scheduler
    (the node's address, not 0.0.0.0)."""

    endpoint: str = Field(min_length=1, max_length=MAX_ENDPOINT_CHARS)


class EndpointRecorded(BaseModel):
    job_id: str
    endpoint: str
    changed: bool


class DeploymentEndpointPublic(BaseModel):
    """Where a deployment answers now; poll it to follow moves. ``endpoint`` is null until its
    copy reported one; ``moving_to`` names the region of a move in flight (the endpoint
    switches once the new copy is healthy; the old one drains a while longer)."""

    job_id: str
    endpoint: str | None
    region: str | None
    state: JobState
    updated_at: datetime | None
    moving_to: str | None = None


class RelocationPublic(BaseModel):
    """A completed move: expected saving over the decision's horizon (forecast), and, where
    given, the measured one (actuals, the energy drawn since against staying put)."""

    from_region: str
    to_region: str
    started_at: datetime
    switched_at: datetime
    finished_at: datetime
    old_attempt: int
    new_attempt: int
    expected_saving_g: float
    expected_saving_pct: float
    horizon_s: float
    measured_saving_g: float | None = None
    measured_saving_pct: float | None = None

    @classmethod
    def of(
        cls,
        moved: Relocation,
        measured_saving_g: float | None = None,
        measured_saving_pct: float | None = None,
    ) -> RelocationPublic:
        return cls(
            from_region=moved.from_region,
            to_region=moved.to_region,
            started_at=moved.started_at,
            switched_at=moved.switched_at,
            finished_at=moved.finished_at,
            old_attempt=moved.old_attempt,
            new_attempt=moved.new_attempt,
            expected_saving_g=moved.expected_saving_g,
            expected_saving_pct=moved.expected_saving_pct,
            horizon_s=moved.horizon_s,
            measured_saving_g=measured_saving_g,
            measured_saving_pct=measured_saving_pct,
        )


class RelocationsPublic(BaseModel):
    job_id: str
    data: list[RelocationPublic]

"""What a cluster says about one submitted run."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class RunStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    UNKNOWN = "unknown"  # the cluster has no run with that submission id


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    status: RunStatus
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None

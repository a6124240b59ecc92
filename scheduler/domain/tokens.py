"""API tokens: who is calling, for which tenant, with which role."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Role(enum.StrEnum):
    USER = "user"  # own tenant's jobs
    ADMIN = "admin"  # every tenant, regions, savings report
    JOB = "job"  # a worker's per-job token: may only report energy for that job


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """A stored token. Only ``token_hash`` (SHA-256 hex of the secret) is kept."""

    id: str
    tenant: str
    role: Role
    token_hash: str
    created_at: datetime
    name: str = ""
    job_id: str | None = None
    expires_at: datetime | None = None
    revoked: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The authenticated caller of one request."""

    tenant: str
    role: Role
    token_id: str
    job_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

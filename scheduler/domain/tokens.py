"""API tokens: who is calling, for which tenant, with which role."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from scheduler.domain.errors import GreenlightError


class Role(enum.StrEnum):
    USER = "user"  # own tenant's jobs
    ADMIN = "admin"  # every tenant, regions, savings report
    JOB = "job"  # a worker's per-attempt token: report that attempt's energy, read its job
    # A one-time credential the dispatch hands a worker through Ray: worthless except to be
    # exchanged, once and within minutes, for that attempt's JOB token.
    BOOTSTRAP = "bootstrap"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """A stored token. Only ``token_hash`` (SHA-256 hex of the secret) is kept. JOB and
    BOOTSTRAP tokens name their ``job_id`` and ``attempt``."""

    id: str
    tenant: str
    role: Role
    token_hash: str
    created_at: datetime
    name: str = ""
    job_id: str | None = None
    attempt: int | None = None
    expires_at: datetime | None = None
    revoked: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The authenticated caller of one request."""

    tenant: str
    role: Role
    token_id: str
    job_id: str | None = None
    attempt: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class TokenNotFound(GreenlightError):
    def __init__(self, token_id: str) -> None:
        super().__init__(f"token {token_id!r} not found")
        self.token_id = token_id

"""Admission at scale: job groups and the list's indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

``jobs.group_id`` (the array or sweep a job belongs to) and one index per list filter, each
ending in the list's order ``(created_at, id)`` so a page is an index range scan at any table
size; ``finished_at`` for the retention prune of finished jobs' events. A revision imports no
application code.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES: dict[str, list[str]] = {
    "ix_jobs_state_created_at_id": ["state", "created_at", "id"],
    "ix_jobs_tenant_state_created_at_id": ["tenant", "state", "created_at", "id"],
    "ix_jobs_kind_created_at_id": ["kind", "created_at", "id"],
    "ix_jobs_group_id_created_at_id": ["group_id", "created_at", "id"],
    "ix_jobs_finished_at": ["finished_at"],
}


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("group_id", sa.String(length=64), nullable=True))
    for name, columns in _INDEXES.items():
        op.create_index(name, "jobs", columns)


def downgrade() -> None:
    for name in reversed(_INDEXES):
        op.drop_index(name, table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("group_id")

"""Cluster: job dependencies.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

One nullable JSON column on ``jobs``: ``after``, the jobs a job runs after, as
``[{"job_id": ..., "kind": "afterok" | "afterany"}]`` (``greenlight submit --after``). NULL for
a job without any, so existing rows need no backfill.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("after", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("after")

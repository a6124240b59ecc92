"""An index on ``jobs.updated_at``: the plan cycle's incremental read no longer scans history.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

Every plan cycle after the first lists the rows stamped since its last read
(``updated_at >= since``, ``scheduler.store.plans.planning_changes``). Without an index that
was a scan of the whole table, finished jobs included: 66 ms of both cores each cycle over
1,100,000 jobs on PostgreSQL (a parallel sequential scan), growing with the history. With it the
read is an index range over the rows that changed. The cost is one more index entry per insert
and per state change; every write that stamps ``updated_at`` changes the state too (or the plan
start), so none of them was a HOT update before either.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_updated_at", "jobs", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_updated_at", table_name="jobs")

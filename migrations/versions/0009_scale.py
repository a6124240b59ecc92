"""Scale: the savings report's hourly rollup, and the indexes its raw edges read.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

* ``savings_rollup_jobs`` / ``savings_rollup_energy``: finished jobs' sums per hour they
  started in (``scheduler.store.rollup``); ``savings_rollup_dirty``: hours changed since they
  were rolled up; ``savings_rollup_state``: the hours rolled and the planning step used.
  Created empty: the first report (or ``greenlight db rollup --rebuild``) builds them, and
  until then the report reads raw rows, as before.
* ``ix_jobs_started_at`` and ``ix_jobs_started_unfinished``: partial indexes on the start
  time (of started jobs; of started, unfinished ones), so the rows the rollup does not answer
  for are index range scans. A pending job's insert touches neither.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "savings_rollup_jobs",
        sa.Column("started_hour", sa.BigInteger, nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("jobs", sa.Integer, nullable=False),
        sa.Column("delay_s", sa.Float, nullable=False),
        sa.Column("gpu_s", sa.Float, nullable=False),
        sa.Column("cpu_s", sa.Float, nullable=False),
        sa.Column("deadline_misses", sa.Integer, nullable=False),
        sa.Column("moved_in_time", sa.Integer, nullable=False),
        sa.Column("moved_in_space", sa.Integer, nullable=False),
    )
    op.create_index("ix_savings_rollup_jobs_started_hour", "savings_rollup_jobs", ["started_hour"])
    op.create_table(
        "savings_rollup_energy",
        sa.Column("started_hour", sa.BigInteger, nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("home_region", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("hour", sa.BigInteger, nullable=False),
        sa.Column("baseline", sa.Boolean, nullable=False),
        sa.Column("energy_j", sa.Float, nullable=False),
        sa.Column("estimated_j", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_savings_rollup_energy_started_hour", "savings_rollup_energy", ["started_hour"]
    )
    op.create_table(
        "savings_rollup_dirty",
        sa.Column("started_hour", sa.BigInteger, nullable=False),
        sa.Column("marks", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("started_hour", name="pk_savings_rollup_dirty"),
    )
    op.create_table(
        "savings_rollup_state",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("rolled_from", sa.BigInteger, nullable=False),
        sa.Column("rolled_to", sa.BigInteger, nullable=False),
        sa.Column("step_s", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_savings_rollup_state"),
    )
    started = sa.text("started_at IS NOT NULL")
    unfinished = sa.text("started_at IS NOT NULL AND finished_at IS NULL")
    op.create_index(
        "ix_jobs_started_at",
        "jobs",
        ["started_at"],
        postgresql_where=started,
        sqlite_where=started,
    )
    op.create_index(
        "ix_jobs_started_unfinished",
        "jobs",
        ["started_at"],
        postgresql_where=unfinished,
        sqlite_where=unfinished,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_started_unfinished", table_name="jobs")
    op.drop_index("ix_jobs_started_at", table_name="jobs")
    for table in (
        "savings_rollup_state",
        "savings_rollup_dirty",
        "savings_rollup_energy",
        "savings_rollup_jobs",
    ):
        op.drop_table(table)

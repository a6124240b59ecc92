"""Fractional GPUs for packed deployments, and Ray Serve applications.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

``jobs.gpus`` becomes a float: a deployment may ask for a share of one GPU (0.25), which the
planner packs with other shares onto as few GPUs as it can. Whole counts keep their values.
``jobs.serve`` (JSON, nullable) holds a deployment's Ray Serve application (import path and
config); NULL for a plain entrypoint, so existing rows need no backfill.

Downgrade rounds every share up to one whole GPU (the old column holds whole GPUs only; counts
above one are whole already) and drops the Serve applications.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column(
            "gpus", existing_type=sa.Integer(), type_=sa.Float(), existing_nullable=False
        )
        batch.add_column(sa.Column("serve", sa.JSON, nullable=True))


def downgrade() -> None:
    op.execute("UPDATE jobs SET gpus = 1 WHERE gpus > 0 AND gpus < 1")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("serve")
        batch.alter_column(
            "gpus",
            existing_type=sa.Float(),
            type_=sa.Integer(),
            existing_nullable=False,
            postgresql_using="gpus::integer",
        )

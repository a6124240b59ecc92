"""Functional units: what each job did (SCI's R).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Three nullable columns on ``jobs``, all NULL until the job's worker reports progress
(``POST /v1/jobs/{id}/progress``), so existing rows need no backfill:
``functional_units`` (the running total: training steps or requests served),
``functional_unit`` (its name, ``steps`` or ``requests``) and ``functional_units_attempt``
(the attempt the total belongs to: a total only grows within one attempt).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("functional_units", sa.Float, nullable=True))
        batch.add_column(sa.Column("functional_unit", sa.String(32), nullable=True))
        batch.add_column(sa.Column("functional_units_attempt", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("functional_units_attempt")
        batch.drop_column("functional_unit")
        batch.drop_column("functional_units")

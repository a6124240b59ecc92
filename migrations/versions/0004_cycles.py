"""Cycles: quarantine and dispatch bookkeeping.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Five nullable columns on ``jobs`` (see ``scheduler.store.tables``): ``quarantine`` (why the
cycles skip a job), ``submit_attempt``/``submit_taken_at`` (the lease on an attempt's submit)
and ``dispatched_attempt``/``dispatched_at`` (the attempt whose dispatch is recorded, set once).
Plain ``sa.DateTime(timezone=True)`` for UtcDateTime: a revision imports no application code.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "quarantine",
    "submit_attempt",
    "submit_taken_at",
    "dispatched_attempt",
    "dispatched_at",
)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("quarantine", sa.Text, nullable=True))
        batch.add_column(sa.Column("submit_attempt", sa.Integer, nullable=True))
        batch.add_column(sa.Column("submit_taken_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("dispatched_attempt", sa.Integer, nullable=True))
        batch.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)

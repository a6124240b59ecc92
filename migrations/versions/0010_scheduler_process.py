"""Scheduler process: state the out-of-process cycles share with the API.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

One small table, ``scheduler_state``: a row per name with a version counter, a time and an
optional body. The scheduler process writes the admission ledger (``ledger``: free GPU-slots
per region over the horizon, a few KiB) and its cycle health (``cycles``); the API bumps
``wake:plan``/``wake:dispatch``/``wake:reconcile`` to wake its cycles from another process.
Plain ``sa.DateTime(timezone=True)`` for UtcDateTime: a revision imports no application code.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scheduler_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_state")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_state")

"""Deployments: endpoints and relocation.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Nullable columns on ``jobs``, all NULL for training jobs and for deployments that never
reported an endpoint, so existing rows need no backfill:

* ``endpoint``, ``endpoint_updated_at``: where the serving copy of a deployment answers (its
  runner posts it, ``POST /v1/jobs/{id}/endpoint``), and when that last changed;
* ``next_endpoint``: the endpoint the new copy of a move in flight reported (health-checked
  before the switch);
* ``relocation``: the move in flight, as JSON (phase, regions, both copies' attempts and
  submission ids, deadlines, expected saving): the store, not the process, holds it, so a
  restart mid-move carries on;
* ``moved_at``: when the deployment last moved (or a move was rolled back): its minimum stay
  counts from there;
* ``relocations``: every completed move, as a JSON list (for the job view and the report);
* ``move_attempts``: how many attempts moves have used (completed or rolled back), so they do
  not count against the job's retries.

Plain ``sa.DateTime(timezone=True)`` for UtcDateTime: a revision imports no application code.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("endpoint", sa.String(512), nullable=True))
        batch.add_column(
            sa.Column("endpoint_updated_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("next_endpoint", sa.String(512), nullable=True))
        batch.add_column(sa.Column("relocation", sa.JSON, nullable=True))
        batch.add_column(sa.Column("moved_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("relocations", sa.JSON, nullable=True))
        batch.add_column(sa.Column("move_attempts", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("move_attempts")
        batch.drop_column("relocations")
        batch.drop_column("moved_at")
        batch.drop_column("relocation")
        batch.drop_column("next_endpoint")
        batch.drop_column("endpoint_updated_at")
        batch.drop_column("endpoint")

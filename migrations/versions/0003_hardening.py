"""Hardening: worker tokens per attempt, forecasts keyed by provider and zone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

* ``api_tokens.attempt``: a worker's token (and its one-time bootstrap credential) belongs to
  one attempt of one job, not to the job.
* ``forecasts`` are looked up by ``(zone, provider, kind, issued_at)``: two regions on one grid
  zone through different providers must not read each other's series.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=True))
    op.drop_index("ix_forecasts_zone_kind_issued_at", table_name="forecasts")
    op.create_index(
        "ix_forecasts_zone_provider_kind_issued_at",
        "forecasts",
        ["zone", "provider", "kind", "issued_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_forecasts_zone_provider_kind_issued_at", table_name="forecasts")
    op.create_index("ix_forecasts_zone_kind_issued_at", "forecasts", ["zone", "kind", "issued_at"])
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("attempt")

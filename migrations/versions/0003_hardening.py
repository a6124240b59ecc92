"""Hardening: worker tokens per attempt, forecasts keyed by provider and zone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

A slot reserved in the chain so work on separate issues migrates in a fixed order; it is a
no-op until its schema changes land.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

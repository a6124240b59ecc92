"""Cluster: job dependencies.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

A slot reserved in the chain so work on separate issues migrates in a fixed order; it is a
no-op until its schema changes land.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

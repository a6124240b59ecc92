"""Functional units: what each job did (SCI's R).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Placeholder: no schema change yet.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

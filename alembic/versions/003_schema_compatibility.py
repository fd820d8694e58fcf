"""Schema compatibility record: the oldest build head that can run against each head.

Expand-only: it creates a new table that no earlier build reads or writes, so a
build at 002 keeps working against it. ``alembic/env.py`` writes one row per
head it migrates to, in the migration's transaction; workers and
``log-ingest migrate --check`` of older builds read it (worker.db.compatibility).

Revision ID: 003
Revises: 002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "003"
down_revision: str | None = "002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand-only: the previous head keeps working (see worker.db.compatibility).
compatible_with: str = "002"


def upgrade() -> None:
    op.create_table(
        "schema_compatibility",
        sa.Column("revision", sa.Text(), primary_key=True),
        sa.Column("oldest_compatible", sa.Text(), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("schema_compatibility")

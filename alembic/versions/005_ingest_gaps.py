"""Ingest gaps: a record of every position the worker did not continue from.

``ingest_gaps`` holds one row each time a partition resumes somewhere else than
its stored next offset: records deleted by retention before they were read, a
log that no longer holds the stored position (topic re-created, another
cluster, a truncated log), or an operator's ``log-ingest offsets set``.
``ingest_rejects_superseded`` keeps the rejects of a log that was replaced,
moved there in the gap's transaction, so that the new log's rejects at the same
positions are stored (rejects are keyed by position).

Expand-only: two new tables; a build at 004 neither reads nor writes them.

Revision ID: 005
Revises: 004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "005"
down_revision: str | None = "004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand-only: new tables (see worker.db.compatibility).
compatible_with: str = "004"


def upgrade() -> None:
    op.create_table(
        "ingest_gaps",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("group_id", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("stored_offset", sa.BigInteger(), nullable=True),
        sa.Column("resumed_offset", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("log_start", sa.BigInteger(), nullable=True),
        sa.Column("log_end", sa.BigInteger(), nullable=True),
        sa.Column(
            "detected_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "kind IN ('retention', 'log_reset', 'operator')", name="ck_ingest_gaps_kind"
        ),
    )
    op.create_table(
        "ingest_rejects_superseded",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("gap_id", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", postgresql.BYTEA(), nullable=True),
        sa.Column("raw", postgresql.BYTEA(), nullable=True),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "superseded_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )


def downgrade() -> None:
    op.drop_table("ingest_rejects_superseded")
    op.drop_table("ingest_gaps")

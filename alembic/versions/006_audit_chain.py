"""Audit chain: a SHA-256 hash chain over the stored audit rows, and the seals of retention.

``audit_chain`` holds one entry per audit row the worker stored since this revision: its
chain (tenant, source topic, partition), its sequence number in that chain, the previous
entry's hash and its own (docs/contract.md gives the encoding). ``audit_chain_seals``
keeps, per chain, the last entry retention deleted, so that verification starts there;
``audit_chain_pruned`` the digest of each row retention deleted past a chain's seal (an
old row that follows a newer one in its chain), so that the chain still verifies.
``audit_chain_start`` holds the instant the chain began: an audit row with no chain entry
created before it was written before the chain (by an older build), not inserted since.

Expand-only: four new tables, an index on one of them, and one row in the last; nothing
of the seed tables changes, and a build at 005 neither reads nor writes them.

Revision ID: 006
Revises: 005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "006"
down_revision: str | None = "005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand-only: new tables (see worker.db.compatibility).
compatible_with: str = "005"


def _chain_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("tenant_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer(), primary_key=True),
    ]


def upgrade() -> None:
    op.create_table(
        "audit_chain",
        *_chain_columns(),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("audit_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("prev_hash", postgresql.BYTEA(), nullable=False),
        sa.Column("hash", postgresql.BYTEA(), nullable=False),
        sa.Column(
            "chained_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    # Which entry chains an audit row: retention and verify look rows up by it.
    op.create_index("ix_audit_chain_audit_id", "audit_chain", ["audit_id"])
    op.create_table(
        "audit_chain_seals",
        *_chain_columns(),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", postgresql.BYTEA(), nullable=False),
        sa.Column(
            "sealed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "audit_chain_pruned",
        *_chain_columns(),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("digest", postgresql.BYTEA(), nullable=False),
        sa.Column(
            "pruned_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "audit_chain_start",
        sa.Column("id", sa.SmallInteger(), primary_key=True),
        sa.Column("began_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("INSERT INTO audit_chain_start (id, began_at) VALUES (1, now())")


def downgrade() -> None:
    op.drop_table("audit_chain_start")
    op.drop_table("audit_chain_pruned")
    op.drop_table("audit_chain_seals")
    op.drop_table("audit_chain")

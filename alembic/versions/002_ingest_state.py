"""Ingest state: consumed offsets, rejected events, and a NOTIFY when a tenant changes.

Revision ID: 002
Revises: 001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "002"
down_revision: str | None = "001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand-only: new tables, and a trigger that only notifies; a build at 001 keeps working.
compatible_with: str = "001"

# The tenant cache LISTENs on this channel; the payload is the tenant id as text.
NOTIFY_FUNCTION = """
CREATE FUNCTION notify_tenant_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tenant_changed', OLD.id::text);
    ELSE
        PERFORM pg_notify('tenant_changed', NEW.id::text);
    END IF;
    RETURN NULL;
END;
$$
"""
NOTIFY_TRIGGER = """
CREATE TRIGGER tenants_notify_changed
AFTER UPDATE OF is_active, api_key OR DELETE ON tenants
FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed()
"""


def upgrade() -> None:
    op.create_table(
        "ingest_offsets",
        sa.Column("group_id", sa.String(255), primary_key=True),
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer(), primary_key=True),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "ingest_rejects",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", postgresql.BYTEA(), nullable=True),
        sa.Column("raw", postgresql.BYTEA(), nullable=True),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("topic", "partition", "offset", name="uq_ingest_rejects_position"),
    )
    op.create_index("ix_ingest_rejects_reason", "ingest_rejects", ["reason"])
    op.execute(NOTIFY_FUNCTION)
    op.execute(NOTIFY_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER tenants_notify_changed ON tenants")
    op.execute("DROP FUNCTION notify_tenant_changed()")
    op.drop_table("ingest_rejects")
    op.drop_table("ingest_offsets")

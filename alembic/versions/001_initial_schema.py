"""Initial schema: tenants, action_logs, audit_logs and their two enums.

Revision ID: 001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Contracting: the first schema; no build before it can run against it.
compatible_with: str = "001"

ACTION_TYPES = (
    "crm_create", "crm_update", "crm_delete", "crm_get", "crm_list", "crm_search",
    "helpdesk_create_ticket", "helpdesk_update_ticket", "helpdesk_get_ticket",
    "helpdesk_list_tickets", "helpdesk_add_comment",
    "calendar_create_event", "calendar_update_event", "calendar_delete_event",
    "calendar_get_event", "calendar_list_events",
    "email_send", "email_get", "email_list", "email_search",
    "knowledge_store", "knowledge_search", "knowledge_get", "knowledge_delete",
)  # fmt: skip
ACTION_STATUSES = ("pending", "success", "failure", "timeout", "retry")

action_type_enum = postgresql.ENUM(*ACTION_TYPES, name="action_type_enum", create_type=False)
action_status_enum = postgresql.ENUM(*ACTION_STATUSES, name="action_status_enum", create_type=False)
EMPTY_JSON = sa.text("'{}'::jsonb")


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
        for name in ("created_at", "updated_at")
    ]


def _tenant_fk() -> sa.Column[object]:
    return sa.Column(
        "tenant_id",
        postgresql.UUID(as_uuid=True),
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    action_type_enum.create(op.get_bind())
    action_status_enum.create(op.get_bind())
    _create_tenants()
    _create_action_logs()
    _create_audit_logs()


def _create_tenants() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("api_key", sa.String(255), nullable=False, unique=True),
        sa.Column(
            "provider_configs", postgresql.JSONB(), nullable=False, server_default=EMPTY_JSON
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("metadata", postgresql.JSONB(), nullable=True),
        *_timestamps(),
    )
    op.create_index("ix_tenants_api_key", "tenants", ["api_key"])
    op.create_index("ix_tenants_is_active", "tenants", ["is_active"])
    op.create_index("ix_tenants_name", "tenants", ["name"])


def _create_action_logs() -> None:
    op.create_table(
        "action_logs",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        _tenant_fk(),
        sa.Column("action_type", action_type_enum, nullable=False),
        sa.Column("provider_name", sa.String(100), nullable=False),
        sa.Column("request_payload", postgresql.JSONB(), nullable=False, server_default=EMPTY_JSON),
        sa.Column("response_data", postgresql.JSONB(), nullable=True),
        sa.Column("status", action_status_enum, nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("execution_time_ms", sa.Integer(), nullable=False),
        sa.Column("metadata", postgresql.JSONB(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("execution_time_ms >= 0", name="ck_action_logs_execution_time_ms"),
    )
    op.create_index("ix_action_logs_action_type", "action_logs", ["action_type"])
    op.create_index(
        "ix_action_logs_action_type_created", "action_logs", ["action_type", "created_at"]
    )
    op.create_index("ix_action_logs_provider_name", "action_logs", ["provider_name"])
    op.create_index("ix_action_logs_provider_status", "action_logs", ["provider_name", "status"])
    op.create_index("ix_action_logs_status", "action_logs", ["status"])
    op.create_index("ix_action_logs_tenant_created", "action_logs", ["tenant_id", "created_at"])
    op.create_index("ix_action_logs_tenant_id", "action_logs", ["tenant_id"])


def _create_audit_logs() -> None:
    op.create_table(
        "audit_logs",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        _tenant_fk(),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("resource_type", sa.String(100), nullable=False),
        sa.Column("resource_id", sa.String(255), nullable=False),
        sa.Column("changes", postgresql.JSONB(), nullable=True),
        sa.Column("ip_address", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(), nullable=True),
        *_timestamps(),
    )
    op.create_index("ix_audit_logs_action", "audit_logs", ["action"])
    op.create_index("ix_audit_logs_action_created", "audit_logs", ["action", "created_at"])
    op.create_index("ix_audit_logs_ip_address", "audit_logs", ["ip_address"])
    op.create_index("ix_audit_logs_resource", "audit_logs", ["resource_type", "resource_id"])
    op.create_index("ix_audit_logs_resource_type", "audit_logs", ["resource_type"])
    op.create_index("ix_audit_logs_tenant_created", "audit_logs", ["tenant_id", "created_at"])
    op.create_index("ix_audit_logs_tenant_id", "audit_logs", ["tenant_id"])
    op.create_index("ix_audit_logs_user_action", "audit_logs", ["user_id", "action"])
    op.create_index("ix_audit_logs_user_id", "audit_logs", ["user_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes; the enums go once no column uses them.
    op.drop_table("audit_logs")
    op.drop_table("action_logs")
    op.drop_table("tenants")
    action_status_enum.drop(op.get_bind())
    action_type_enum.drop(op.get_bind())

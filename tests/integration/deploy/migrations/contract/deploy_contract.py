"""Test only: a contracting migration a newer release might ship (a renamed column).

The current worker writes ``audit_logs.user_agent``, so after this rename it
would fail on its first audit event: it must refuse to start instead.

Revision ID: deploy_contract
Revises: this build's head
"""

from collections.abc import Sequence

from alembic import op

from worker.db.migrations import head_revisions

revision: str = "deploy_contract"
down_revision: str | None = head_revisions()[0]
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Contracting: only builds that know this revision can run against it.
compatible_with: str = "deploy_contract"


def upgrade() -> None:
    op.alter_column("audit_logs", "user_agent", new_column_name="client_agent")


def downgrade() -> None:
    op.alter_column("audit_logs", "client_agent", new_column_name="user_agent")

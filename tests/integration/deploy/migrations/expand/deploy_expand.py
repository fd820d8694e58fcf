"""Test only: an expand-only migration a newer release might ship (a nullable column).

It always sits on top of this build's head, so that a database migrated with
it is "one revision newer than the build" whatever the build's head is.

Revision ID: deploy_expand
Revises: this build's head
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from worker.db.migrations import head_revisions

revision: str = "deploy_expand"
down_revision: str | None = head_revisions()[0]
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand-only: the build at the previous head never names the new column.
compatible_with: str = head_revisions()[0]


def upgrade() -> None:
    op.add_column("action_logs", sa.Column("deploy_note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("action_logs", "deploy_note")

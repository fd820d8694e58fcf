"""Tenant created notify: a NOTIFY on tenant_changed when a tenant is inserted.

Without it a worker that cached an id as unknown rejects the new tenant's events
until the negative TTL runs out. Expand-only: a second trigger calling the
function of 002, which only notifies; a build at 003 keeps working, and one that
does not listen for creations merely ignores the extra notification.

Revision ID: 004
Revises: 003
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "004"
down_revision: str | None = "003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand-only: a new trigger that only notifies (see worker.db.compatibility).
compatible_with: str = "003"

# A trigger of its own rather than a replaced one: nothing of 002 is dropped.
CREATED_TRIGGER = """
CREATE TRIGGER tenants_notify_created
AFTER INSERT ON tenants
FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed()
"""


def upgrade() -> None:
    op.execute(CREATED_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER tenants_notify_created ON tenants")

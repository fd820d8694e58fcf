"""Finding the rows PostgreSQL refuses, so that they become rejects and the rest is written.

When a batch fails on a row (``classify`` says ``row``: SQLSTATE class 22 or 23, or a
value the driver cannot encode), the sink tries, in this order:

1. ``reject_unknown_tenants``: after a foreign key violation, the events of tenants
   deleted since lookup become ``unknown_tenant`` rejects, found in one query, and the
   rest of the batch is tried again whole;
2. otherwise, ``load_isolating``: the events are loaded under a savepoint, and a list that
   fails is split in halves until the refused row stands alone; it becomes a
   ``db_rejected`` reject (``unknown_tenant`` for a foreign key violation).

``load_isolating`` raises any error that is not the row's fault as it is, having left the
transaction to the caller; ``reject_unknown_tenants`` raises what the pool raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from worker.db.errors import FOREIGN_KEY_VIOLATION, classify, describe
from worker.db.pool_mode import fetch
from worker.records import Accepted, Reject, RejectReason
from worker.write import sql
from worker.write.connection import Connection, load
from worker.write.plan import Target, Work


async def reject_unknown_tenants(
    pool: asyncpg.Pool, work: Work, exc: BaseException, *, in_transaction: bool = False
) -> bool:
    """After a foreign key violation, reject the events of tenants deleted since lookup."""
    if getattr(exc, "sqlstate", None) != FOREIGN_KEY_VIOLATION:
        return False
    wanted = list({event.row.tenant_id for event in (*work.actions, *work.audits)})
    rows = await fetch(pool, sql.EXISTING_TENANTS, wanted, in_transaction=in_transaction)
    existing: set[UUID] = {row["id"] for row in rows}
    missing = [e for e in (*work.actions, *work.audits) if e.row.tenant_id not in existing]
    detail = "tenant_id not in tenants (deleted since lookup)"
    work.rejects += [Reject(e.record, RejectReason.UNKNOWN_TENANT, detail) for e in missing]
    work.actions = [e for e in work.actions if e.row.tenant_id in existing]
    work.audits = [e for e in work.audits if e.row.tenant_id in existing]
    return bool(missing)


async def load_isolating(
    connection: Connection, target: Target, events: Sequence[Accepted], *, make_stage: bool = False
) -> list[Reject]:
    """Load under a savepoint; on a refused row split in halves until it stands alone."""
    if not events:
        return []
    try:
        async with connection.transaction():  # nested: a savepoint
            await load(connection, target, events, make_stage=make_stage)
            await connection.execute(f"TRUNCATE {target.stage}")
    except Exception as exc:
        if classify(exc) != "row":
            raise
        if len(events) == 1:
            return [refused(events[0], exc)]
        half = len(events) // 2
        first = await load_isolating(connection, target, events[:half], make_stage=make_stage)
        return first + await load_isolating(
            connection, target, events[half:], make_stage=make_stage
        )
    return []


def refused(event: Accepted, exc: BaseException) -> Reject:
    """The reject of an event PostgreSQL refused alone, naming the error but no values."""
    if getattr(exc, "sqlstate", None) == FOREIGN_KEY_VIOLATION:
        return Reject(event.record, RejectReason.UNKNOWN_TENANT, describe(exc))
    return Reject(event.record, RejectReason.DB_REJECTED, describe(exc))

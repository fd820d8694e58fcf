"""The write stage's pool connections: their set-up, their reset, and the COPYs they run.

A pool for ``PostgresSink`` is created with ``init=prepare_connection, reset=keep_session``:
every connection then has the staging tables (PostgreSQL empties them at each commit)
and the faster codecs of ``worker.write.codecs``. Behind a transaction-mode pooler
(``worker.db.pool_mode``) the pool's ``init`` is ``prepare_pooled_connection`` instead
(the codecs only), and ``load`` makes the staging table it needs inside the write's
transaction. ``copy`` COPYs records straight into a table; ``load`` COPYs events into a
target's staging table and merges them into its table.

Whatever PostgreSQL or the driver raises goes through as it is; the callers classify it
(``worker.db.errors``).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from worker.records import Accepted, Reject
from worker.write import sql
from worker.write.codecs import use_fast_codecs
from worker.write.plan import Target

Connection = PoolConnectionProxy


async def prepare_connection(connection: asyncpg.Connection) -> None:
    """Pool ``init``: the staging tables, once per connection (emptied at each commit),
    and the faster codecs of ``worker.write.codecs``."""
    await connection.execute(sql.CREATE_STAGING)
    await use_fast_codecs(connection)


async def prepare_pooled_connection(connection: asyncpg.Connection) -> None:
    """Pool ``init`` behind a transaction-mode pooler: the codecs only, which live in the
    client; inside a transaction, so that any lookup stays on one server connection."""
    async with connection.transaction():
        await use_fast_codecs(connection)


async def keep_session(_connection: asyncpg.Connection) -> None:
    """Pool ``reset``: nothing beyond asyncpg's own rollback of a transaction left open.

    The default reset (RESET ALL, CLOSE ALL, UNLISTEN *, advisory unlocks) costs a
    round trip after every write, for session state these connections never take.
    """


async def load(
    connection: Connection, target: Target, events: Sequence[Accepted], *, make_stage: bool = False
) -> list[Reject]:
    """COPY the events into the target's staging table, then merge them into the table.

    ``make_stage`` (transaction-pooler mode) first creates that table in this transaction.
    """
    if events:
        if make_stage:
            await connection.execute(sql.STAGE_IN_TRANSACTION[target.stage])
        records = [target.record(event) for event in events]
        await connection.copy_records_to_table(target.stage, records=records)
        await connection.execute(target.statement(events))
    return []


async def copy(
    connection: Connection, table: str, columns: Sequence[str], records: list[tuple[object, ...]]
) -> None:
    """COPY the records straight into the table's columns; nothing when there are none."""
    if records:
        await connection.copy_records_to_table(table, records=records, columns=columns)

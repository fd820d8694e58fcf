"""What DATABASE_POOL_MODE changes: behind a transaction pooler, nothing outlives a transaction.

A transaction-mode pooler (PgBouncer ``pool_mode=transaction``, Supavisor, RDS Proxy)
lends a server connection for one transaction and may lend the next transaction of the
same client another one. In ``transaction`` mode the worker therefore:

- turns asyncpg's statement cache off (``statement_cache_size=0``): a named prepared
  statement would stay on a server connection that another client gets next ("prepared
  statement "__asyncpg_stmt_1__" already exists"). Every statement, COPY's column lookup
  included, is then an unnamed one, prepared and run in two exchanges;
- runs each of its statements inside an explicit transaction (``fetch``), so that those
  two exchanges reach the same server connection;
- creates its staging tables inside the write's transaction, ``ON COMMIT DROP``,
  instead of once per connection (``worker.write.connection``), and sets nothing at
  session level;
- listens for tenant changes only on DATABASE_LISTEN_URL (LISTEN needs a session):
  without it, tenant changes reach the cache after TENANT_CACHE_TTL_S (``listen_dsn``).

In ``session`` mode (the default, also for a session-mode pooler) nothing changes.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from worker.db.failover import acquire
from worker.settings import Settings


def connect_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``asyncpg.connect`` / ``create_pool`` for the pool mode."""
    return {"statement_cache_size": 0} if settings.transaction_pooling else {}


async def fetch(
    pool: asyncpg.Pool, query: str, *args: object, in_transaction: bool
) -> list[asyncpg.Record]:
    """The rows of one read, on a connection that is dropped if it can no longer write.

    ``in_transaction`` (transaction mode) wraps it in BEGIN ... COMMIT: two more round
    trips, so that the pooler keeps the statement's two exchanges on one server connection.
    """
    async with acquire(pool, transaction=in_transaction) as connection:
        rows: list[asyncpg.Record] = await connection.fetch(query, *args)
        return rows


def listen_dsn(settings: Settings) -> str | None:
    """Where the tenant listener LISTENs: DATABASE_LISTEN_URL when given; else DATABASE_URL
    in session mode, and nowhere in transaction mode (a pooler cannot hold a LISTEN)."""
    if settings.database_listen_url is not None:
        return "postgresql://" + settings.database_listen_url.split("://", 1)[1]
    return None if settings.transaction_pooling else settings.asyncpg_dsn

"""Connections that can no longer write are dropped, so that the retry finds the primary.

After a failover the pool may still hold connections to the old primary: closed by
its shutdown or crash, or alive on a server that now refuses writes (a primary demoted
in place, ``default_transaction_read_only``, a service address that moved to a standby).
``unusable(exc)`` says what an error tells about the connection that raised it:

- ``"server"``: the server is read-only (SQLSTATE 25006). Every connection of the pool
  reached that same server, so the whole pool is recycled: each connection is closed
  when next released or acquired, and its replacement is made from DATABASE_URL
  (with ``target_session_attrs=read-write``, on whichever host is the primary now);
- ``"connection"``: this connection is lost or its server is going away: connection
  exceptions (class 08), admin shutdown, crash shutdown, cannot connect now (57P01,
  57P02, 57P03), a connection asyncpg reports closed or broken, a socket error or a
  timeout (the server may be gone silent). That connection is closed at once;
- ``None``: the connection is fine (a lock timeout, a deadlock, a refused row ...).

``acquire(pool)`` lends a pool connection, optionally inside a transaction, and applies
that rule to whatever the borrower raises, which it re-raises unchanged: the callers
classify it (``worker.db.errors``) and retry.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

log = structlog.get_logger(__name__)
Unusable = Literal["server", "connection"] | None

READ_ONLY = "25006"
# Admin shutdown, crash shutdown, cannot connect now: the server is going or not there yet.
_SERVER_GOING = frozenset({"57P01", "57P02", "57P03"})


def unusable(exc: BaseException) -> Unusable:
    """What ``exc``, raised on a connection, says about that connection (module docstring)."""
    for error in _chain(exc):
        sqlstate = getattr(error, "sqlstate", None)
        if sqlstate == READ_ONLY:
            return "server"
        if isinstance(sqlstate, str) and (sqlstate[:2] == "08" or sqlstate in _SERVER_GOING):
            return "connection"
        if isinstance(error, OSError | asyncpg.InterfaceError | asyncpg.InternalClientError):
            # Socket errors and timeouts; "connection is closed"; a protocol state broken
            # by a connection the server killed mid-exchange.
            return "connection"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """The error and the ones it was raised from or during, nearest first (no cycles)."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 8:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


async def discard_if_unusable(
    pool: asyncpg.Pool, connection: PoolConnectionProxy, exc: BaseException
) -> Unusable:
    """Close the connection, or recycle the whole pool, as ``unusable(exc)`` says."""
    kind = unusable(exc)
    if kind == "server":
        # The server can still answer reads: without this the pool would keep every
        # connection to it, and every retry of a write would fail the same way.
        await pool.expire_connections()
        log.warning("database_read_only", action="pool_recycled", sqlstate=READ_ONLY)
    if kind is not None:
        # Closed already, asyncpg has handed it back to the pool: its proxy then refuses.
        with contextlib.suppress(asyncpg.InterfaceError):
            connection.terminate()
    return kind


@asynccontextmanager
async def acquire(
    pool: asyncpg.Pool, *, transaction: bool = False
) -> AsyncIterator[PoolConnectionProxy]:
    """A pool connection (inside a transaction when asked) that is dropped if it can no
    longer write; the borrower's error is raised as it is."""
    async with pool.acquire() as connection:
        try:
            if transaction:
                async with connection.transaction():
                    yield connection
            else:
                yield connection
        except BaseException as exc:
            await discard_if_unusable(pool, connection, exc)
            raise

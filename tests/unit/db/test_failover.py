"""Which errors make a pool connection unusable for writes: its server, itself, or neither."""

from __future__ import annotations

import asyncpg
import pytest
from asyncpg import exceptions as pg

from worker.db.errors import classify
from worker.db.failover import unusable

READ_ONLY_SERVER = [
    pg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
]
LOST_CONNECTION = [
    pg.AdminShutdownError("terminating connection due to administrator command"),
    pg.CrashShutdownError("terminating connection because of crash of another server process"),
    pg.CannotConnectNowError("the database system is shutting down"),
    pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    pg.ConnectionFailureError("connection failure"),
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
]
USABLE = [
    pg.SerializationError("could not serialize access"),
    pg.DeadlockDetectedError("deadlock detected"),
    pg.LockNotAvailableError("canceling statement due to lock timeout"),
    pg.QueryCanceledError("canceling statement due to statement timeout"),
    pg.TooManyConnectionsError("sorry, too many clients already"),
    pg.UniqueViolationError("duplicate key value violates unique constraint"),
    pg.UndefinedTableError('relation "ingest_offsets" does not exist'),
    RuntimeError("a bug"),
]


@pytest.mark.parametrize("exc", READ_ONLY_SERVER, ids=repr)
def test_a_read_only_server_recycles_the_pool(exc: BaseException) -> None:
    """25006 (a demoted primary, default_transaction_read_only) condemns the whole server."""
    assert unusable(exc) == "server"
    assert classify(exc) == "transient"


@pytest.mark.parametrize("exc", LOST_CONNECTION, ids=repr)
def test_a_lost_or_shutting_down_connection_is_dropped(exc: BaseException) -> None:
    """Class 08, 57P01-57P03, closed or broken connections, socket errors and timeouts."""
    assert unusable(exc) == "connection"
    assert classify(exc) == "transient"


@pytest.mark.parametrize("exc", USABLE, ids=repr)
def test_other_errors_keep_the_connection(exc: BaseException) -> None:
    """Conflicts, lock waits, a cancelled statement, a refused row: the connection still writes."""
    assert unusable(exc) is None


def test_the_cause_counts_when_cleanup_failed_too() -> None:
    """A rollback that fails on the lost connection still names the loss as the reason."""
    first = pg.ReadOnlySQLTransactionError("cannot execute UPDATE in a read-only transaction")
    second = RuntimeError("rollback failed")
    second.__context__ = first
    assert unusable(second) == "server"

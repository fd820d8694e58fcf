"""PostgreSQL error classification: retry the batch, reject the row, or stop."""

from __future__ import annotations

import asyncpg
import pytest
from asyncpg import exceptions as pg

from worker.db.errors import classify, describe

TRANSIENT = [
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    OSError(113, "No route to host"),
    TimeoutError(),  # asyncio.TimeoutError is this class since Python 3.11
    pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    pg.ConnectionFailureError("connection failure"),
    pg.TooManyConnectionsError("sorry, too many clients already"),
    pg.AdminShutdownError("terminating connection due to administrator command"),
    pg.CannotConnectNowError("the database system is starting up"),
    pg.QueryCanceledError("canceling statement due to statement timeout"),
    pg.SerializationError("could not serialize access"),
    pg.DeadlockDetectedError("deadlock detected"),
    pg.LockNotAvailableError("canceling statement due to lock timeout"),
    pg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    asyncpg.TargetServerAttributeNotMatched("None of the hosts match 'read-write'"),
]
ROW = [
    pg.CheckViolationError("new row violates check constraint"),
    pg.ForeignKeyViolationError("insert or update violates foreign key constraint"),
    pg.UniqueViolationError("duplicate key value violates unique constraint"),
    pg.NotNullViolationError("null value in column violates not-null constraint"),
    pg.StringDataRightTruncationError("value too long for type character varying(100)"),
    pg.InvalidTextRepresentationError("invalid input value for enum"),
    pg.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00'),
    pg.NumericValueOutOfRangeError("integer out of range"),
    OverflowError("value out of int64 range"),
    UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
]
FATAL = [
    pg.UndefinedTableError('relation "ingest_offsets" does not exist'),
    pg.UndefinedColumnError("column does not exist"),
    pg.InsufficientPrivilegeError("permission denied for table action_logs"),
    pg.CardinalityViolationError("ON CONFLICT DO UPDATE command cannot affect row a second time"),
    pg.InFailedSQLTransactionError("current transaction is aborted"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.InterfaceError("pool is closed"),
    TypeError("'str' object cannot be interpreted as an integer"),
    RuntimeError("a bug"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=repr)
def test_unavailable_database_is_transient(exc: BaseException) -> None:
    """Connection loss, classes 08, 53 and 57, conflicts, lock waits and timeouts are retried."""
    assert classify(exc) == "transient"


@pytest.mark.parametrize("exc", ROW, ids=repr)
def test_refused_value_is_the_rows_fault(exc: BaseException) -> None:
    """Classes 22 and 23, and values the driver cannot encode, reject the row."""
    assert classify(exc) == "row"


@pytest.mark.parametrize("exc", FATAL, ids=repr)
def test_anything_else_is_fatal(exc: BaseException) -> None:
    """Schema mismatches, permissions, bugs and misuse of the driver stop the worker."""
    assert classify(exc) == "fatal"


def test_sqlstate_is_read_from_any_exception() -> None:
    """Only the SQLSTATE counts, whichever driver class carries it."""

    class Foreign(Exception):
        sqlstate = "08006"

    assert classify(Foreign()) == "transient"


def test_describe_names_state_and_constraint_but_no_values() -> None:
    """A reject's detail names SQLSTATE, error class, table and constraint, not the row."""
    exc = pg.CheckViolationError.new(
        {"C": "23514", "M": 'new row for relation "action_logs" violates check constraint',
         "D": "Failing row contains (secret-value).", "t": "action_logs",
         "n": "ck_action_logs_execution_time_ms"}
    )  # fmt: skip
    assert describe(exc) == (
        "23514 CheckViolationError table=action_logs constraint=ck_action_logs_execution_time_ms"
    )
    assert describe(OverflowError("value out of int64 range")) == "client OverflowError"


def test_cleanup_error_after_a_lost_connection_is_transient() -> None:
    """A rollback that fails because the connection broke mid-COPY does not stop the worker."""
    busy = "cannot perform operation: another operation is in progress"
    cleanup = asyncpg.InterfaceError(busy)
    cleanup.__context__ = asyncpg.InternalClientError(
        "cannot switch to state 21; another operation (2) is in progress"
    )
    assert classify(cleanup) == "transient"
    assert classify(asyncpg.InterfaceError(busy)) == "fatal"  # on its own: a misuse

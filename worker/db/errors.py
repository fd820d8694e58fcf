"""PostgreSQL errors by what the caller does with them: retry, reject the row, or stop.

``classify(exc)`` sorts any exception a statement raises into one of three kinds:

- ``transient``, retry the same work later: SQLSTATE classes 08 (connection exception),
  53 (insufficient resources, such as too many connections) and 57 (operator intervention:
  shutdown, cancelled or timed-out statements); the states 40001 (serialization failure),
  40P01 (deadlock), 55P03 (lock not available) and 25006 (read-only transaction, a
  failover target); ``OSError`` and so timeouts; a connection asyncpg reports closed;
  no host of a multi-host DATABASE_URL matching ``target_session_attrs`` (a failover
  between the old primary's fencing and the new one's promotion), or only old primaries
  (``worker.db.timeline``);
- ``row``, the row's own fault: classes 22 (data exception) and 23 (integrity constraint
  violation), and values the driver cannot encode (``ValueError``, ``OverflowError``);
- ``fatal``, anything else: a schema mismatch, a missing privilege, a bug.

``transient_as_error`` raises ``TransientError`` for a transient error and lets every
other exception through as it is; ``describe`` names an error without a row's values.
Nothing here raises on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import asyncpg

from worker.db.timeline import StalePrimaryError
from worker.errors import TransientError

Kind = Literal["transient", "row", "fatal"]

# Connection failures (08), resources such as too many connections (53), shutdown and
# cancelled statements (57), and lock waits, conflicts or a read-only failover target.
_TRANSIENT_CLASSES = frozenset({"08", "53", "57"})
_TRANSIENT_STATES = frozenset({"40001", "40P01", "55P03", "25006"})
# Data exceptions (22) and integrity constraint violations (23): the row's own fault.
_ROW_CLASSES = frozenset({"22", "23"})
FOREIGN_KEY_VIOLATION = "23503"


def classify(exc: BaseException) -> Kind:
    """Retry the batch (``transient``), reject the row (``row``) or stop (``fatal``).

    An error raised while cleaning up after a lost connection (the rollback finds the
    connection busy or closed) is as transient as the loss that caused it.
    """
    kind = _classify_one(exc)
    cause = exc.__cause__ or exc.__context__
    if kind == "fatal" and cause is not None and classify(cause) == "transient":
        return "transient"
    return kind


def _classify_one(exc: BaseException) -> Kind:
    if isinstance(exc, OSError):  # includes TimeoutError, which asyncio.TimeoutError is
        return "transient"
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate[:2] in _TRANSIENT_CLASSES or sqlstate in _TRANSIENT_STATES:
            return "transient"
        if sqlstate[:2] in _ROW_CLASSES:
            return "row"
    if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc):
        return "transient"
    if isinstance(exc, asyncpg.TargetServerAttributeNotMatched | StalePrimaryError):
        return "transient"  # no writable host among several: a promotion is under way
    if isinstance(exc, ValueError | OverflowError):  # a value the driver cannot encode
        return "row"
    if isinstance(exc, asyncpg.InternalClientError) and "another operation" in str(exc):
        # A connection the server broke mid-exchange can surface as asyncpg's protocol
        # state error; the pool discards that connection, so the retry gets a fresh one.
        return "transient"
    return "fatal"


def describe(exc: BaseException) -> str:
    """SQLSTATE, error class and constraint of an error: never the values of a row."""
    parts = [getattr(exc, "sqlstate", None) or "client", type(exc).__name__]
    for attribute in ("table_name", "constraint_name"):
        if value := getattr(exc, attribute, None):
            parts.append(f"{attribute.removesuffix('_name')}={value}")
    return " ".join(parts)


@contextmanager
def transient_as_error(doing: str) -> Iterator[None]:
    """Translate an unavailable database into TransientError; let everything else through."""
    try:
        yield
    except Exception as exc:
        if classify(exc) == "transient":
            # Messages of these classes name the server's state, never a row's values.
            message = str(exc).partition("\n")[0]
            raise TransientError(
                f"PostgreSQL unavailable while {doing}: {describe(exc)}: {message}"
            ) from exc
        raise

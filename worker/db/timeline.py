"""A worker never goes back to an old primary: new connections refuse an older timeline.

``target_session_attrs=read-write`` takes the first host of DATABASE_URL that accepts
writes. After a failover, an old primary started again on its own (not fenced, not
rejoined as a standby) accepts writes too, and is often the first host: a worker
reconnecting would follow it back, and write where nobody reads (split brain).

A promotion starts a new timeline, so the old primary's is older. ``TimelineGuard``
makes every new connection of the worker (its pool's and the tenant listener's): it
tries the hosts in order, each with the URL's own options, and keeps the first that
accepts the connection unless it is on an older timeline of a cluster (same system
identifier) than one this process has connected to already; an older one is refused
(``stale_primary_refused``) and the next host tried. When every host is refused or
down, the connection fails as transient and the worker retries with backoff.

What it cannot see: a worker started while both servers accept writes has no timeline
to compare with, and takes the first host. Only fencing prevents that (see
docs/operations.md). A server that does not tell its timeline (a managed service that
hides these functions, a standby) is taken as it is.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# The current insert timeline is the first 8 hex digits of the WAL file's name; the
# checkpoint's timeline (pg_control_checkpoint) lags a promotion until its next checkpoint.
_IDENTITY = """
SELECT (SELECT system_identifier FROM pg_control_system()) AS system,
    CASE WHEN pg_is_in_recovery() THEN NULL
        ELSE ('x' || left(pg_walfile_name(pg_current_wal_insert_lsn()), 8))::bit(32)::bigint
    END AS timeline
"""


class StalePrimaryError(Exception):
    """Every host that answered is an old primary: on an older timeline than one seen
    (``worker.db.errors`` calls it transient: a failover manager will fence it)."""


def each_host(dsn: str) -> list[str]:
    """The URL once per host of ``host1:5432,host2:5432`` (options kept), or as it is."""
    parts = urlsplit(dsn)
    credentials, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return [dsn]
    return [
        urlunsplit(parts._replace(netloc=f"{credentials}{at}{host}")) for host in hosts.split(",")
    ]


class TimelineGuard:
    """Makes the worker's connections; remembers the newest timeline of each cluster."""

    def __init__(self) -> None:
        self._newest: dict[int, int] = {}

    async def connect(self, dsn: str, **options: Any) -> asyncpg.Connection:
        """``asyncpg.connect``'s signature; the first host that is not an old primary."""
        refused: BaseException | None = None
        for host_dsn in each_host(dsn):
            try:
                connection: asyncpg.Connection = await asyncpg.connect(host_dsn, **options)
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
            ) as exc:
                refused = exc  # down, starting, or not accepting writes: the next host
                continue
            try:
                if await self._admit(connection, host_dsn):
                    return connection
            except BaseException:
                connection.terminate()
                raise
            connection.terminate()
            refused = StalePrimaryError("every host accepting writes is an old primary")
        assert refused is not None  # each_host gives at least one URL
        raise refused

    async def _admit(self, connection: asyncpg.Connection, dsn: str) -> bool:
        try:
            async with connection.transaction():  # one server connection behind a pooler
                row = await connection.fetchrow(_IDENTITY)
        except asyncpg.PostgresError:
            return True  # the functions are hidden here: nothing to compare
        if row is None or row["timeline"] is None:
            return True
        system, timeline = int(row["system"]), int(row["timeline"])
        newest = self._newest.get(system, 0)
        if timeline < newest:
            host = urlsplit(dsn).netloc.rpartition("@")[2]
            log.warning("stale_primary_refused", host=host, timeline=timeline, newest=newest)
            return False
        self._newest[system] = timeline
        return True

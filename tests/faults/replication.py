"""A primary and an asynchronous streaming standby (embedded PostgreSQL), for failover scenarios.

``ReplicatedPair`` starts two servers of the embedded wheel on 127.0.0.1: ``first``
initialized and started as the primary, ``second`` made its standby with
``pg_basebackup -R`` (asynchronous: the primary never waits for it). The worker is
given both hosts, first then second, with ``target_session_attrs=read-write``
(``url``); checks read one server by name (``direct_url``), never through the
two-host URL, which would follow whichever server accepts writes.

``cut_replication`` stops the standby from receiving WAL while the primary goes on
committing, so that a failover certainly loses the primary's last transactions, as an
asynchronous failover may. The pair is stopped (``-m immediate``) when the test ends.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from tests.streams import wait_until
from worker.devtools.embedded import LOOPBACK, EmbeddedPostgres


class ReplicatedPair:
    """Two embedded servers: ``first`` the primary, ``second`` its streaming standby."""

    def __init__(self, root: Path) -> None:
        self.first = EmbeddedPostgres(root / "first", durable=False)
        self.second = EmbeddedPostgres(root / "second", durable=False)
        self.database = f"f_{uuid.uuid4().hex[:16]}"

    def start(self) -> None:
        self.first.start()
        self.second.replicate(self.first)
        self.second.start()

    def stop(self) -> None:
        for server in (self.first, self.second):
            if server.pid() is not None:
                server.stop("immediate")

    def url(self) -> str:
        """Both hosts, first then second; only a server that accepts writes will do."""
        hosts = f"{LOOPBACK}:{self.first.port},{LOOPBACK}:{self.second.port}"
        return f"postgresql://postgres@{hosts}/{self.database}?target_session_attrs=read-write"

    def direct_url(self, server: EmbeddedPostgres, database: str | None = None) -> str:
        return server.url(database or self.database)

    async def create_database(self) -> None:
        await execute(self.first.url(), f'CREATE DATABASE "{self.database}"')

    async def cut_replication(self) -> None:
        """The standby stops receiving WAL: what the primary commits from now on, it never gets."""
        await execute(self.second.url(), "ALTER SYSTEM SET primary_conninfo = ''")
        await execute(self.second.url(), "SELECT pg_reload_conf()")

        async def stopped() -> bool:
            query = "SELECT count(*) FROM pg_stat_wal_receiver"
            return await fetchval(self.second.url(), query) == 0

        await wait_until(stopped, 20, "the standby's WAL receiver to stop")

    async def caught_up(self) -> None:
        """Until the standby has replayed everything the (running) primary has written."""
        target = await fetchval(self.first.url(), "SELECT pg_current_wal_lsn()::text")

        async def replayed() -> bool:
            query = "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn"
            return bool(await fetchval(self.second.url(), query, target))

        await wait_until(replayed, 30, "the standby to replay the primary's WAL")


@asynccontextmanager
async def started_pair() -> AsyncIterator[ReplicatedPair]:
    """A started pair, its database created on the primary, in a temporary folder of its own
    (not under pytest's basetemp: the servers run as another user when we are root)."""
    with tempfile.TemporaryDirectory(prefix="log-ingest-failover-") as root:
        pair = ReplicatedPair(Path(root))
        try:
            await asyncio.to_thread(pair.start)
            await pair.create_database()
            yield pair
        finally:
            await asyncio.to_thread(pair.stop)


async def execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def fetchval(url: str, query: str, *args: object) -> object:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()

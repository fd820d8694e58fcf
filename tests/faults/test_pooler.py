"""Replicas behind a transaction-mode PgBouncer with fewer server connections than writers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from tests.checker import check_exactly_once
from tests.faults.conftest import new_tenants
from tests.faults.harness import Workers, wait_drained
from tests.faults.replication import fetchval
from tests.services import Services
from tests.streams import produce, worker_env
from worker.devtools.eventgen import EventFactory
from worker.devtools.pgbouncer import APPLICATION_NAME, HOW_TO_GET_IT, PgBouncer, pgbouncer_binary
from worker.settings import Settings

REPLICAS = 3
SERVER_CONNECTIONS = 2  # the replicas' pools hold 3 x (3 lanes + 2) client connections


@pytest.fixture
async def pooler(services: Services) -> AsyncIterator[PgBouncer]:
    """A PgBouncer in transaction mode in front of the session's PostgreSQL."""
    binary = pgbouncer_binary()
    if binary is None:
        pytest.skip(HOW_TO_GET_IT)
    if services.embedded_postgres is None:
        pytest.skip("needs the embedded PostgreSQL, whose loopback clients log in without password")
    server = urlsplit(services.postgres_url)
    bouncer = PgBouncer(
        binary, server.port or 5432, pool_size=SERVER_CONNECTIONS, user=server.username or ""
    )
    await asyncio.to_thread(bouncer.start)
    try:
        yield bouncer
    finally:
        await asyncio.to_thread(bouncer.stop)


async def server_connections(stream: Settings) -> int:
    """The pooler's server connections to the stream's database, as PostgreSQL counts them."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    query += "AND application_name = $1"
    return int(await fetchval(stream.database_url, query, APPLICATION_NAME))  # type: ignore[call-overload]


@pytest.mark.timeout(180)
async def test_replicas_through_a_transaction_pooler(
    stream: Settings, pooler: PgBouncer, workers: Workers
) -> None:
    """Three replicas with DATABASE_POOL_MODE=transaction through PgBouncer (2 server
    connections for 15 client ones), one listening on DATABASE_LISTEN_URL: all write,
    every event exactly once, exit 0."""
    database = stream.database_url.rpartition("/")[2]
    pooled = stream.model_copy(update={"database_url": pooler.url(database)})
    env = worker_env(pooled, DATABASE_POOL_MODE="transaction")
    factory = EventFactory(await new_tenants(stream, 3), seed=951)
    sent = await produce(stream, factory.mixed(6000, 0.02, stream.max_event_bytes))
    # The first listens for tenant changes on a direct connection; the other has only TTLs.
    listening = env | {"DATABASE_LISTEN_URL": stream.database_url}
    replicas = [await workers.start(listening)]
    replicas += [await workers.start(env) for _ in range(REPLICAS - 1)]
    peak = 0
    for _ in range(3):
        sent += await produce(stream, factory.mixed(4000, 0.02, stream.max_event_bytes))
        peak = max(peak, await server_connections(stream))
    await wait_drained(stream, sent, 120, *replicas)
    for replica in replicas:
        replica.terminate()
    assert [await replica.wait(30) for replica in replicas] == [0] * REPLICAS
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)
    assert 1 <= peak <= SERVER_CONNECTIONS
    assert all(batches_written(replica.stderr) > 0 for replica in replicas)
    ttl_only = ['"event": "tenant_invalidation_ttl_only"' in r.stderr for r in replicas]
    assert ttl_only == [False] + [True] * (REPLICAS - 1)


def batches_written(log: str) -> int:
    """The batches a worker committed, as its last line (``worker_stopped``) counts them."""
    for line in reversed(log.splitlines()):
        if '"event": "worker_stopped"' in line:
            return int(json.loads(line)["batches"])
    return 0

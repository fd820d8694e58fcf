"""Where ``log-ingest bench`` runs: the embedded stack in a temp dir, or the servers of the env.

Either way the benchmark works in a database and topics of its own
(``log_ingest_bench_<hex>``, ``bench-*-<hex>``), migrated to head with every
index of the seed schema, with a few tenants; on external servers the database
is dropped at the end. Nothing here measures anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from worker.consume.kafka_config import client_options
from worker.db.migrations import migrate
from worker.devtools.embedded import EmbeddedKafka, EmbeddedPostgres
from worker.ops.admin import create_tenant, set_tenant_active
from worker.settings import Settings, load_settings

ACTIVE_TENANTS = 8
INACTIVE_TENANTS = 1
# Small enough that the 1% invalid events (some of them "too large") stay cheap to produce.
BENCH_MAX_EVENT_BYTES = 64 * 1024


@contextlib.contextmanager
def servers(external: bool) -> Iterator[Settings]:
    """Settings pointing at a PostgreSQL server (admin URL) and a broker, for the run's length."""
    if external:
        yield load_settings()
        return
    with tempfile.TemporaryDirectory(prefix="log-ingest-bench-") as root:
        postgres = EmbeddedPostgres(Path(root) / "pgdata", durable=False)
        broker = EmbeddedKafka(log_path=Path(root) / "broker.log")
        postgres.start()
        try:
            broker.start()
            try:
                yield load_settings(
                    database_url=postgres.url(), kafka_bootstrap_servers=broker.bootstrap_servers
                )
            finally:
                broker.stop()
        finally:
            postgres.stop("immediate")


@contextlib.asynccontextmanager
async def bench_database(admin: Settings, partitions: int) -> AsyncIterator[Settings]:
    """A migrated database and two topics of this run; the database is dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    name = f"log_ingest_bench_{suffix}"
    base = admin.database_url.rsplit("/", 1)[0]
    settings = admin.model_copy(
        update={
            "database_url": f"{base}/{name}",
            "kafka_action_topic": f"bench-action-{suffix}",
            "kafka_audit_topic": f"bench-audit-{suffix}",
            "kafka_group_id": f"bench-worker-{suffix}",
            "kafka_enable_idempotence": False,
            "max_event_bytes": BENCH_MAX_EVENT_BYTES,
        }
    )
    await _execute(admin.asyncpg_dsn, f'CREATE DATABASE "{name}"')
    try:
        await asyncio.to_thread(migrate, settings)
        await create_topics(settings, partitions)
        yield settings
    finally:
        await _execute(admin.asyncpg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def make_tenants(settings: Settings) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Several active tenants and one inactive one."""
    made = [
        (await create_tenant(settings, f"bench-tenant-{i}")).tenant_id
        for i in range(ACTIVE_TENANTS + INACTIVE_TENANTS)
    ]
    for tenant_id in made[ACTIVE_TENANTS:]:
        await set_tenant_active(settings, tenant_id, False)
    return made[:ACTIVE_TENANTS], made[ACTIVE_TENANTS:]


async def create_topics(settings: Settings, partitions: int) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        names = [settings.kafka_action_topic, settings.kafka_audit_topic]
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def stored_offsets(
    connection: asyncpg.Connection, group_id: str
) -> dict[tuple[str, int], int]:
    """The worker's progress as PostgreSQL holds it."""
    rows = await connection.fetch(
        "SELECT topic, partition, next_offset FROM ingest_offsets WHERE group_id = $1", group_id
    )
    return {(row["topic"], row["partition"]): row["next_offset"] for row in rows}


async def _execute(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()

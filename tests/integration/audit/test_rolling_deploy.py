"""Migration 006 applies while workers of the previous build ingest; they keep ingesting,
unchained, and `audit verify` counts their rows as written before the chain began."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.checker import check_exactly_once
from tests.faults.conftest import new_tenants
from tests.faults.harness import Workers, run_cli, wait_progress_beyond
from tests.integration.test_migrations import alembic
from tests.streams import create_topics, produce, stream_settings, wait_drained, worker_env
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

# The previous build, as far as the audit chain goes: at schema 005, no chain entries.
OLD_BUILD = (sys.executable, "-c", """
import worker.audit.ingest, worker.service.database
async def nothing(*args, **kwargs): return None
worker.service.database._check_schema = nothing  # this build's head is 005
worker.audit.ingest.AuditChain.append = nothing  # it knows no chain
from worker.cli import main
main()
""", "run")  # fmt: skip


async def test_old_workers_ingest_through_the_migration(
    settings: Settings, workers: Workers
) -> None:
    """An old worker ingests before, during and after 006; a new one takes over; verify
    passes, the old worker's audit rows counted as before the chain."""
    await alembic(settings, "upgrade", "005")
    stream = stream_settings(settings)
    await create_topics(stream.kafka_bootstrap_servers,
                        [stream.kafka_action_topic, stream.kafka_audit_topic], 3)  # fmt: skip
    factory = EventFactory(await new_tenants(stream, 2), seed=61)
    factory.start = datetime.now(UTC) - timedelta(days=30)  # every event before the chain
    sent = await produce(stream, factory.mixed(1500, 0.02, stream.max_event_bytes))
    old = await workers.start(worker_env(stream), OLD_BUILD)
    await wait_progress_beyond(stream, 0, 60)
    code, errors = await run_cli("migrate", env=worker_env(stream))
    assert code == 0, errors
    sent += await produce(stream, factory.mixed(1500, 0.02, stream.max_event_bytes))
    await wait_drained(stream, sent, 90)  # the old worker went on after the migration
    unchained = await audit_rows(stream.database_url)

    new = await workers.start(worker_env(stream))
    old.terminate()
    assert await old.wait(30) == 0
    sent += await produce(stream, factory.mixed(1500, 0.02, stream.max_event_bytes))
    await wait_drained(stream, sent, 90)
    new.terminate()
    assert await new.wait(30) == 0
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id,
                             unchained=unchained)  # fmt: skip


async def audit_rows(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM audit_logs")
    finally:
        await connection.close()
    return count

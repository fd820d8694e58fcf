"""Replicas in one group share partitions, losing and doubling nothing; the fence holds."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.checker import check_exactly_once
from tests.integration.test_migrations import alembic
from tests.integration.test_pipeline_e2e import make_tenants, running_worker
from tests.streams import create_topics, produce, stream_settings, wait_drained, wait_until
from worker.devtools.eventgen import EventFactory
from worker.service.app import run_worker
from worker.settings import Settings

pytestmark = pytest.mark.timeout(300)


async def prepared(settings: Settings, partitions: int) -> Settings:
    await alembic(settings, "upgrade", "head")
    configured = stream_settings(settings)
    topics = [configured.kafka_action_topic, configured.kafka_audit_topic]
    await create_topics(configured.kafka_bootstrap_servers, topics, partitions)
    return configured


async def test_three_replicas_started_and_stopped_while_events_flow(settings: Settings) -> None:
    """Replicas join and leave during the stream; the totals are exact afterwards."""
    stream = await prepared(settings, partitions=4)
    active, _ = await make_tenants(stream, active=4, inactive=0)
    factory = EventFactory(active, seed=21)
    chunks = [factory.mixed(4000, 0.01, stream.max_event_bytes) for _ in range(6)]
    stops = [asyncio.Event() for _ in range(3)]
    tasks: list[asyncio.Task[object]] = []
    sent = []
    for step, chunk in enumerate(chunks):
        if step < 3:  # replicas join one by one ...
            tasks.append(asyncio.create_task(run_worker(stream, stops[step])))  # type: ignore[arg-type]
        elif step < 5:  # ... then two of them leave
            stops[step - 3].set()
        sent += await produce(stream, chunk)
    await wait_drained(stream, sent, timeout_s=150)
    stops[2].set()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)


async def test_fenced_replica_writes_nothing(settings: Settings) -> None:
    """If another replica moved the offset meanwhile, the batch in flight is dropped."""
    stream = await prepared(settings, partitions=1)
    (tenant,), _ = await make_tenants(stream, active=1, inactive=0)
    factory = EventFactory([tenant], seed=4)
    first = await produce(stream, [factory.valid("audit", factory.audit()) for _ in range(10)])
    holder = await asyncpg.connect(stream.database_url)
    try:
        async with running_worker(stream):
            await wait_drained(stream, first)
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("LOCK TABLE ingest_offsets IN ACCESS EXCLUSIVE MODE")
            second = await produce(
                stream, [factory.valid("audit", factory.audit()) for _ in range(5)]
            )

            async def worker_blocked() -> bool:
                waiting = await holder.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
                return bool(waiting)

            await wait_until(worker_blocked, 30, "the worker's write to wait on the lock")
            # Pretend another replica took the partition and stored these offsets.
            await holder.execute(
                "UPDATE ingest_offsets SET next_offset = next_offset + 5 WHERE group_id = $1",
                stream.kafka_group_id,
            )
            await transaction.commit()
            # Writes are sequential: once these are stored, the fenced batch was dealt with.
            third = await produce(
                stream, [factory.valid("audit", factory.audit()) for _ in range(3)]
            )
            await wait_drained(stream, first + second + third)
            audits = await holder.fetchval("SELECT count(*) FROM audit_logs")
    finally:
        await holder.close()
    assert audits == 13  # the fenced batch of 5 was not written by this replica

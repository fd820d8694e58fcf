"""The worker process dies or is stopped at the worst moments; nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import random
import signal
import time

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.checker import Sent, check_exactly_once
from tests.faults.conftest import PARTITIONS, new_tenants
from tests.faults.crash_after_commit import EXIT_CODE
from tests.faults.harness import (
    CRASH_AFTER_DB_COMMIT,
    Workers,
    progress,
    wait_drained,
    wait_progress_beyond,
)
from tests.streams import produce, wait_until, worker_env
from worker.devtools.eventgen import EventFactory, Generated
from worker.settings import Settings

KILLED = -signal.SIGKILL


async def kafka_committed(stream: Settings) -> dict[tuple[str, int], int]:
    """The offsets the group committed to Kafka (only for lag tools), read without joining it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stream.kafka_bootstrap_servers,
        group_id=stream.kafka_group_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        found = {}
        for topic in (stream.kafka_action_topic, stream.kafka_audit_topic):
            for partition in range(PARTITIONS):
                offset = await consumer.committed(TopicPartition(topic, partition))
                if offset is not None:
                    found[(topic, partition)] = offset
    finally:
        await consumer.stop()
    return found


async def produce_in_chunks(stream: Settings, generated: list[Generated], chunk: int) -> list[Sent]:
    sent: list[Sent] = []
    for start in range(0, len(generated), chunk):
        sent += await produce(stream, generated[start : start + chunk])
    return sent


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_kill_9_five_times_while_50000_events_flow(
    stream: Settings, workers: Workers
) -> None:
    """Five kill -9s at random moments of a 50,000-event flow, each followed by a restart."""
    active, inactive = await new_tenants(stream, 5), await new_tenants(stream, 1, active=False)
    factory = EventFactory(active, seed=101, inactive_tenants=inactive)
    generated = factory.mixed(50_000, 0.02, stream.max_event_bytes)
    producing = asyncio.create_task(produce_in_chunks(stream, generated, 5000))
    rng = random.Random(101)
    env = worker_env(stream)
    try:
        for kill in range(5):
            worker = await workers.start(env)
            # Each after a further fifth of the flow is stored: a fast worker cannot
            # finish the whole flow before the fifth kill and leave nothing to wait for.
            await wait_progress_beyond(stream, kill * len(generated) // 5, 90)
            await asyncio.sleep(rng.uniform(0.0, 1.5))  # the random moment: a timed fault
            assert worker.alive
            worker.kill()
            assert await worker.wait(10) == KILLED
        sent = await producing
    finally:
        producing.cancel()
    last = await workers.start(env)
    await wait_drained(stream, sent, 180, last)
    last.terminate()
    assert await last.wait(30) == 0
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)


@pytest.mark.timeout(120)
async def test_exit_between_database_commit_and_kafka_commit(
    stream: Settings, workers: Workers
) -> None:
    """Dying right after the database commit, before Kafka's, neither loses nor doubles a batch."""
    factory = EventFactory(await new_tenants(stream, 2), seed=102)
    sent = await produce(stream, factory.mixed(4000, 0.05, stream.max_event_bytes))
    # The worker with a fault built in: os._exit right after its first database commit.
    crashing = await workers.start(worker_env(stream), command=CRASH_AFTER_DB_COMMIT)
    assert await crashing.wait(60) == EXIT_CODE  # 86: exited by the fault, not by a failure
    assert await progress(stream) > 0  # PostgreSQL holds the batch ...
    assert await kafka_committed(stream) == {}  # ... Kafka never heard of it
    worker = await workers.start(worker_env(stream))
    await wait_drained(stream, sent, 60, worker)
    worker.terminate()
    assert await worker.wait(30) == 0
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)


async def lock_waiters(url: str) -> int:
    """Sessions of this database waiting for a lock."""
    db = await asyncpg.connect(url)
    try:
        return int(
            await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        )
    finally:
        await db.close()


@pytest.mark.timeout(120)
async def test_sigterm_while_a_large_batch_is_written(stream: Settings, workers: Workers) -> None:
    """SIGTERM in the middle of a 5,000-event write: that batch commits, exit 0 within the grace."""
    factory = EventFactory(await new_tenants(stream, 3), seed=103)
    sent = await produce(stream, factory.mixed(20_000, 0.02, stream.max_event_bytes))
    grace_s = 15.0
    env = worker_env(stream, SHUTDOWN_GRACE_S=str(grace_s), BATCH_MAX_EVENTS="5000")
    holder = await asyncpg.connect(stream.database_url)
    try:
        # The lock makes "in the middle of a write" a certainty instead of a matter of luck.
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE action_logs IN ACCESS EXCLUSIVE MODE")
        worker = await workers.start(env)

        async def writing() -> bool:
            assert worker.alive
            return await lock_waiters(stream.database_url) > 0

        await wait_until(writing, 60, "the worker's write to wait on the lock")
        worker.terminate()
        signalled = time.monotonic()
        await asyncio.sleep(2.0)  # the write stays stuck for a while after SIGTERM: a timed fault
        await transaction.commit()
    finally:
        await holder.close()
    assert await worker.wait(grace_s + 5) == 0
    assert time.monotonic() - signalled < grace_s
    assert await progress(stream) >= 5000  # the batch in hand was written, not dropped
    last = await workers.start(env)
    await wait_drained(stream, sent, 90, last)
    last.terminate()
    assert await last.wait(30) == 0
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)

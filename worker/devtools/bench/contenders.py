"""The two references the worker is measured against, on the same data in the same run.

- ``ceiling``: the final rows written straight into ``action_logs`` and ``audit_logs``
  with asyncpg's binary COPY from memory (no Kafka, no validation, no merge), on 1, 2
  and 3 connections in parallel; the tables are emptied before and after each run.
- ``pipe``: the unvalidated shortcut: aiokafka ``getmany`` -> COPY of the raw JSON into
  a table with one jsonb column -> commit the offsets to Kafka, batch after batch. It
  skips what is not JSON (jsonb would stop it on the first such message) and checks
  nothing else: no schema, no tenant, no exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition

from worker.consume.kafka_config import client_options
from worker.devtools.bench.data import Advance, Prefilled, Row
from worker.settings import Settings
from worker.write.sql import ACTION_COLUMNS, AUDIT_COLUMNS

CEILING_CONNECTIONS = (1, 2, 3)
PIPE_TABLE = "bench_pipe"
PIPE_BATCH = 5000


async def ceiling(settings: Settings, filled: Prefilled, advance: Advance) -> dict[int, float]:
    """Rows per second of a plain binary COPY, by number of parallel connections."""
    actions, audits = list(filled.actions.values()), list(filled.audits.values())
    rates: dict[int, float] = {}
    for count in CEILING_CONNECTIONS:
        await empty_tables(settings)
        await settle(settings)
        seconds = await _copy_parallel(settings.asyncpg_dsn, actions, audits, count)
        rates[count] = (len(actions) + len(audits)) / seconds
        advance(1)
    await empty_tables(settings)
    return rates


async def _copy_parallel(dsn: str, actions: list[Row], audits: list[Row], count: int) -> float:
    connections = [await asyncpg.connect(dsn) for _ in range(count)]
    try:
        started = time.perf_counter()
        await asyncio.gather(
            *(
                _copy_share(connection, actions[i::count], audits[i::count])
                for i, connection in enumerate(connections)
            )
        )
        return time.perf_counter() - started
    finally:
        for connection in connections:
            await connection.close()


async def _copy_share(
    connection: asyncpg.Connection, actions: Sequence[Row], audits: Sequence[Row]
) -> None:
    await connection.copy_records_to_table("action_logs", records=actions, columns=ACTION_COLUMNS)
    await connection.copy_records_to_table("audit_logs", records=audits, columns=AUDIT_COLUMNS)


async def settle(settings: Settings) -> None:
    """Start a timed phase with nothing of the last one pending: a checkpoint writes out its
    dirty pages now rather than during the next contender's run (needs pg_checkpoint or
    superuser: without it, on ``--external``, phases run as they come)."""
    connection = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await connection.execute("CHECKPOINT")
    finally:
        await connection.close()


# What a contender or a worker's drain writes (offsets are per group: each has its own).
WRITTEN = "action_logs, audit_logs, audit_chain, audit_chain_seals, ingest_rejects"


async def empty_tables(settings: Settings) -> None:
    """Empty what the last contender or drain wrote, for the next one."""
    connection = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await connection.execute(f"TRUNCATE {WRITTEN}")
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def reading_from_start(
    settings: Settings, filled: Prefilled, name: str, **options: Any
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer of a group of its own, assigned every pre-filled partition at its start."""
    consumer = AIOKafkaConsumer(
        group_id=f"bench-{name}-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        fetch_max_bytes=32 * 1024 * 1024,
        **options,
        **client_options(settings),
    )
    try:
        await consumer.start()
        partitions = [KafkaTopicPartition(*position) for position in filled.ends]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        yield consumer
    finally:
        await consumer.stop()


async def pipe(settings: Settings, filled: Prefilled, advance: Advance) -> float:
    """Seconds the pipe takes to move every message of the topics into its table."""
    connection = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await connection.execute(f"CREATE TABLE {PIPE_TABLE} (doc jsonb)")
        await settle(settings)
        options = {"max_partition_fetch_bytes": 2 * 1024 * 1024}
        async with reading_from_start(settings, filled, "pipe", **options) as consumer:
            started = time.perf_counter()
            await _pipe_loop(consumer, connection, filled, advance)
            return time.perf_counter() - started
    finally:
        # Gone before the worker's turn, so that autovacuum does not work on it meanwhile.
        await connection.execute(f"DROP TABLE IF EXISTS {PIPE_TABLE}")
        await connection.close()


async def _pipe_loop(
    consumer: AIOKafkaConsumer, connection: asyncpg.Connection, filled: Prefilled, advance: Advance
) -> None:
    remaining = dict(filled.ends)
    while remaining:
        batches = await consumer.getmany(timeout_ms=200, max_records=PIPE_BATCH)
        rows = [
            (text,)
            for messages in batches.values()
            for message in messages
            if (text := _json_text(message.value)) is not None
        ]
        if rows:
            await connection.copy_records_to_table(PIPE_TABLE, records=rows)
        offsets = {tp: messages[-1].offset + 1 for tp, messages in batches.items() if messages}
        if offsets:
            await consumer.commit(offsets)
        for tp, next_offset in offsets.items():
            if next_offset >= remaining.get((tp.topic, tp.partition), 0):
                remaining.pop((tp.topic, tp.partition), None)
        advance(sum(len(messages) for messages in batches.values()))


def _json_text(value: bytes | None) -> str | None:
    if not value:
        return None
    try:
        orjson.loads(value)
    except ValueError:
        return None
    return value.decode()

"""Test support for the flowing pipeline: topics, producing generated events, waiting for drain."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.checker import Sent
from tests.helpers import command_env
from worker.devtools.eventgen import Generated
from worker.settings import Settings


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def produce(
    settings: Settings, generated: list[Generated], max_request_size: int = 4 * 1024 * 1024
) -> list[Sent]:
    """Publish with plain aiokafka (as any producer would) and note where each message went."""
    topics = {"action": settings.kafka_action_topic, "audit": settings.kafka_audit_topic}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5,
                                max_request_size=max_request_size)  # fmt: skip
    await producer.start()
    try:
        futures = [await producer.send(topics[g.topic_kind], g.value, key=g.key) for g in generated]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [
        Sent(g, m.topic, m.partition, m.offset) for g, m in zip(generated, metadata, strict=True)
    ]


async def wait_until(
    condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str, every_s: float = 0.1
) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


async def stored_offsets(database_url: str, group_id: str) -> dict[tuple[str, int], int]:
    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch(
            "SELECT topic, partition, next_offset FROM ingest_offsets WHERE group_id = $1", group_id
        )
    finally:
        await db.close()
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


def log_ends(sent: list[Sent]) -> dict[tuple[str, int], int]:
    ends: dict[tuple[str, int], int] = {}
    for s in sent:
        ends[(s.topic, s.partition)] = max(ends.get((s.topic, s.partition), 0), s.offset + 1)
    return ends


async def wait_drained(settings: Settings, sent: list[Sent], timeout_s: float = 90) -> None:
    """Until PostgreSQL's stored offsets reach the end of everything produced."""
    ends = log_ends(sent)

    async def drained() -> bool:
        stored = await stored_offsets(settings.database_url, settings.kafka_group_id)
        return all(stored.get(tp, -1) >= end for tp, end in ends.items())

    await wait_until(drained, timeout_s, "the worker to drain the topics")


def stream_settings(settings: Settings, **overrides: object) -> Settings:
    """The test's settings with its own topics and group, fit for the embedded broker."""
    suffix = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "kafka_action_topic": f"action-events-{suffix}",
        "kafka_audit_topic": f"audit-events-{suffix}",
        "kafka_group_id": f"log-ingest-{suffix}",
        "kafka_enable_idempotence": False,
        "max_event_bytes": 64 * 1024,
        "batch_max_wait_ms": 100,
        "retry_backoff_max_s": 1.0,
        "http_port": 0,
    }
    return settings.model_copy(update=values | overrides)


def worker_env(stream: Settings, **extra: str) -> dict[str, str]:
    """The environment of `log-ingest run` for this stream's database, broker, topics and group."""
    return command_env(
        stream.database_url,
        KAFKA_BOOTSTRAP_SERVERS=stream.kafka_bootstrap_servers,
        KAFKA_ACTION_TOPIC=stream.kafka_action_topic,
        KAFKA_AUDIT_TOPIC=stream.kafka_audit_topic,
        KAFKA_GROUP_ID=stream.kafka_group_id,
        KAFKA_ENABLE_IDEMPOTENCE="false",
        KAFKA_SESSION_TIMEOUT_MS=str(stream.kafka_session_timeout_ms),
        KAFKA_HEARTBEAT_INTERVAL_MS=str(stream.kafka_heartbeat_interval_ms),
        MAX_EVENT_BYTES=str(stream.max_event_bytes),
        BATCH_MAX_WAIT_MS=str(stream.batch_max_wait_ms),
        RETRY_BACKOFF_MAX_S=str(stream.retry_backoff_max_s),
        **({"HTTP_PORT": "0"} | extra),
    )

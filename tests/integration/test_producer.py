"""Producers' tools: EventPublisher picks topic and key; `log-ingest produce` publishes N events."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer

from schemas import ActionEvent, AuditEvent
from tests.helpers import command_env, run_command
from tests.services import Services
from tests.streams import create_topics, stream_settings
from worker.devtools.eventgen import EventFactory
from worker.ops.publisher import EventPublisher
from worker.settings import Settings


async def read_all(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        seen: list[tuple[bytes | None, bytes]] = []
        while len(seen) < count:
            batches = await consumer.getmany(timeout_ms=1000)
            seen += [(m.key, m.value) for msgs in batches.values() for m in msgs]
        return seen
    finally:
        await consumer.stop()


async def test_publisher_routes_by_type_and_keys_by_id(
    settings: Settings, services: Services
) -> None:
    """An action goes to the action topic, an audit to the audit topic, each keyed by its id."""
    stream = stream_settings(settings)
    topics = [stream.kafka_action_topic, stream.kafka_audit_topic]
    await create_topics(services.kafka_bootstrap, topics, partitions=1)
    factory = EventFactory([uuid.uuid4()], seed=1)
    action = ActionEvent.model_validate(factory.action())
    audit = AuditEvent.model_validate(factory.audit())
    async with EventPublisher(stream) as publisher:
        await publisher.publish(action)
        assert await publisher.publish_many([audit, audit]) == 2
    [(key, value)] = await read_all(services.kafka_bootstrap, stream.kafka_action_topic, 1)
    assert key == str(action.id).encode()
    assert ActionEvent.model_validate_json(value) == action
    audits = await read_all(services.kafka_bootstrap, stream.kafka_audit_topic, 2)
    assert {k for k, _ in audits} == {str(audit.id).encode()}


async def test_produce_command(settings: Settings, services: Services) -> None:
    """`log-ingest produce --kind audit --count 50` publishes exactly 50 messages there."""
    stream = stream_settings(settings)
    await create_topics(services.kafka_bootstrap, [stream.kafka_audit_topic], partitions=2)
    env = command_env(
        settings.database_url,
        KAFKA_BOOTSTRAP_SERVERS=services.kafka_bootstrap,
        KAFKA_AUDIT_TOPIC=stream.kafka_audit_topic,
        KAFKA_ENABLE_IDEMPOTENCE="false",
    )
    argv = ("log-ingest", "produce", "--kind", "audit", "--tenant", str(uuid.uuid4()),
            "--count", "50", "--invalid-ratio", "0.1", "--rate", "500")  # fmt: skip
    done = await run_command(*argv, env=env)
    assert done.returncode == 0, done.stderr
    assert "published 50 events" in done.stdout
    assert len(await read_all(services.kafka_bootstrap, stream.kafka_audit_topic, 50)) == 50


async def test_example_publisher_runs(settings: Settings, services: Services) -> None:
    """examples/publish.py publishes a two-event lifecycle and one audit event."""
    stream = stream_settings(settings)
    topics = [stream.kafka_action_topic, stream.kafka_audit_topic]
    await create_topics(services.kafka_bootstrap, topics, partitions=1)
    env = command_env(
        settings.database_url,
        KAFKA_BOOTSTRAP_SERVERS=services.kafka_bootstrap,
        KAFKA_ACTION_TOPIC=stream.kafka_action_topic,
        KAFKA_AUDIT_TOPIC=stream.kafka_audit_topic,
        KAFKA_ENABLE_IDEMPOTENCE="false",
    )
    done = await run_command("python", "examples/publish.py", str(uuid.uuid4()), env=env)
    assert done.returncode == 0, done.stderr
    actions = await read_all(services.kafka_bootstrap, stream.kafka_action_topic, 2)
    statuses = [ActionEvent.model_validate_json(value).status for _, value in actions]
    assert statuses == ["pending", "success"]
    assert len(await read_all(services.kafka_bootstrap, stream.kafka_audit_topic, 1)) == 1

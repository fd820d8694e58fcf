"""The session's broker is a real Kafka-protocol peer: topics, produce, group consume, commit."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.services import Services, consumer_timings


async def test_broker_round_trip_with_committed_offsets(services: Services) -> None:
    """Messages produced to a new topic are consumed by a group and its offset is committed."""
    topic, group = f"probe-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka_bootstrap)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"m{i}".encode(), key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=services.kafka_bootstrap, group_id=group,
        enable_auto_commit=False, auto_offset_reset="earliest", **consumer_timings(services),
    )  # fmt: skip
    await consumer.start()
    try:
        seen: list[bytes] = []
        while len(seen) < 10:
            batches = await consumer.getmany(timeout_ms=1000)
            seen += [m.value for msgs in batches.values() for m in msgs]
        await consumer.commit()
        assert seen == [f"m{i}".encode() for i in range(10)]
        assert await consumer.committed(TopicPartition(topic, 0)) == 10
    finally:
        await consumer.stop()

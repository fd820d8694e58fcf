"""``log-ingest offsets show`` and ``set``: each partition's stored position beside its log,
and an operator's new position.

``set`` is safe while workers run: it takes the partition's row lock and writes the new
offset with an ``operator`` row in ``ingest_gaps`` (``worker.write.gaps``). The owner's
next write is then fenced (its compare-and-set expects the old offset), and it goes on
from the new one; a partition it holds (``partition_blocked``, ``offset_out_of_range``)
is released when it sees the new gap, within seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition

from worker.consume.kafka_config import client_options
from worker.db.pool_mode import connect_options
from worker.errors import ConfigError
from worker.records import TopicPartition
from worker.settings import Settings
from worker.write.gaps import Gap, GapKind, set_offset

STORED = "SELECT topic, partition, next_offset FROM ingest_offsets WHERE group_id = $1"


@dataclass(frozen=True)
class Position:
    tp: TopicPartition
    stored: int | None  # PostgreSQL's next offset for the group (None: none yet)
    log_start: int
    log_end: int  # as the broker's ListOffsets says (Tansu's may lag the last batch)

    @property
    def lag(self) -> int:
        return max(self.log_end - (self.log_start if self.stored is None else self.stored), 0)


@dataclass(frozen=True)
class Moved:
    tp: TopicPartition
    stored: int | None
    resumed: int
    gap_id: int


async def show(settings: Settings) -> list[Position]:
    """Every partition of the worker's two topics, in order."""
    topics = [settings.kafka_action_topic, settings.kafka_audit_topic]
    bounds = await _log_bounds(settings, topics)
    connection = await asyncpg.connect(settings.asyncpg_dsn, **connect_options(settings))
    try:
        async with connection.transaction():  # one server connection behind a pooler
            rows = await connection.fetch(STORED, settings.kafka_group_id)
    finally:
        await connection.close()
    stored = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    return [Position(tp, stored.get(tp), start, end) for tp, (start, end) in sorted(bounds.items())]


async def move(settings: Settings, topic: str, partition: int | None, to: str | int) -> list[Moved]:
    """Set the partition (every partition of ``topic`` when None) to ``to``: "earliest",
    "latest" or an offset within the log."""
    bounds = await _log_bounds(settings, [topic])
    if partition is not None:
        if TopicPartition(topic, partition) not in bounds:
            raise ConfigError(f"--partition: {topic} has no partition {partition}")
        bounds = {TopicPartition(topic, partition): bounds[TopicPartition(topic, partition)]}
    moved = []
    connection = await asyncpg.connect(settings.asyncpg_dsn, **connect_options(settings))
    try:
        for tp, (start, end) in sorted(bounds.items()):
            resumed = _target(to, start, end)
            gap = Gap(tp, None, resumed, GapKind.OPERATOR, start, end)
            gap_id, stored = await set_offset(connection, settings.kafka_group_id, gap)
            moved.append(Moved(tp, stored, resumed, gap_id))
    finally:
        await connection.close()
    return moved


def _target(to: str | int, start: int, end: int) -> int:
    if to == "earliest":
        return start
    if to == "latest":
        return end
    assert isinstance(to, int)
    if not start <= to <= end:
        raise ConfigError(f"--offset {to}: the log holds offsets {start} to {end - 1}")
    return to


async def _log_bounds(
    settings: Settings, topics: list[str]
) -> dict[TopicPartition, tuple[int, int]]:
    """Each partition's log start and end, from the broker."""
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    try:
        await consumer.topics()  # metadata, so that partitions_for_topic knows them
        partitions = []
        for topic in topics:
            numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                raise ConfigError(f"--topic: the broker has no topic {topic!r}")
            partitions += [KafkaTopicPartition(topic, number) for number in sorted(numbers)]
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {TopicPartition(*tp): (starts[tp], ends[tp]) for tp in partitions}

"""Whether a partition's log is still the one its stored position was read from.

Offsets alone cannot tell a log created again (a topic deleted and re-created,
another cluster) once it has grown past the stored position. The record just before
that position can: the worker stored it, as a row of its event id or as a reject of
its bytes at its position. A log whose record there PostgreSQL does not know, *and*
which was produced after the position was stored, is another log. Both are asked
for: a row deleted since (retention, a tenant deleted) is not a new log, nor is a
producer's clock ahead of the database's alone.

It is checked once per assignment, at the first fetch after it (a fetch inside the
rebalance callback would wait for the rebalance to end), before the partition is
resumed.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.errors import NoOffsetForPartitionError, OffsetOutOfRangeError

from worker.consume.undecodable import UNDECODABLE
from worker.records import TopicPartition
from worker.write.gaps import Recall

READ_TIMEOUT_MS = 1000  # the record is in the log: a fetch answers at once


class Witness(Protocol):
    async def recall(self, tp: TopicPartition, offset: int, value: bytes | None) -> Recall: ...


async def read_record(
    consumer: AIOKafkaConsumer, tp: KafkaTopicPartition, offset: int
) -> ConsumerRecord[Any, Any] | None:
    """The record at ``offset``, or None when there is none to read. Leaves the partition
    paused, its position anywhere: the caller seeks it."""
    consumer.seek(tp, offset)
    consumer.resume(tp)
    try:
        async with asyncio.timeout(READ_TIMEOUT_MS / 1000 + 1):
            got = await consumer.getmany(tp, timeout_ms=READ_TIMEOUT_MS, max_records=1)
    except (TimeoutError, OffsetOutOfRangeError, NoOffsetForPartitionError, *UNDECODABLE):
        return None  # the fetch that follows finds these itself
    finally:
        consumer.pause(tp)
    records = got.get(tp, [])
    return records[0] if records and records[0].offset == offset else None


def another_log(record: ConsumerRecord[Any, Any], recall: Recall) -> bool:
    return (
        not recall.known
        and recall.stored_at_ms is not None
        and record.timestamp > recall.stored_at_ms
    )

"""Finding the record batch a fetch could not decode, without losing anything around it.

aiokafka decodes a partition's batches as ``getmany`` returns them. A batch it cannot
decode (a CRC mismatch, an unknown codec, corrupt bytes) raises out of ``getmany``: the
records it had taken from other partitions in that call are lost with the exception,
though their positions moved on. So every partition goes back to where it stood before
the call, and they are read again one partition and one record at a time, until the
batch raises again: that partition is held at that offset (``worker.consume.blocked``),
the records read on the way are returned. A batch that decodes the second time (a
corruption on the wire) holds nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.errors import CorruptRecordException, UnsupportedCodecError

from worker.consume.blocked import Hold
from worker.consume.membership import fetch_states
from worker.records import TopicPartition
from worker.service.health import Readiness

if TYPE_CHECKING:
    from worker.consume.starts import Starts

# What decoding a batch raises: aiokafka's own errors, and the decompressors' on corrupt
# bytes (zlib's for gzip, ValueError subclasses for zstd and snappy). Not RuntimeError,
# which lz4 raises: every KafkaError is one, a broker's failures included.
UNDECODABLE = (CorruptRecordException, UnsupportedCodecError, zlib.error, EOFError, ValueError)
STEP_TIMEOUT_MS = 500  # a fetch at a position just restored: the records are there


class Found(NamedTuple):
    records: list[ConsumerRecord[Any, Any]]  # read before the bad batch, in order
    bad: KafkaTopicPartition | None
    offset: int  # the bad batch's first offset (where its partition now stands)
    error: str  # the decoder's message: names the cause, holds no payload


async def find_bad_batch(
    consumer: AIOKafkaConsumer,
    before: Mapping[KafkaTopicPartition, int],
    held: Collection[KafkaTopicPartition],
    max_records: int,
) -> Found:
    """Put every partition back where it stood ``before`` the failed call, then read those
    not ``held`` one record at a time until a batch raises, or ``max_records``."""
    assigned = consumer.assignment()
    for tp, position in before.items():
        if tp in assigned:
            consumer.seek(tp, position)
    records: list[ConsumerRecord[Any, Any]] = []
    for tp in (tp for tp in before if tp not in held):
        while len(records) < max_records:
            try:
                got = await consumer.getmany(tp, timeout_ms=STEP_TIMEOUT_MS, max_records=1)
            except UNDECODABLE as exc:
                offset = fetch_states(consumer).get(tp, (0, None))[0]
                return Found(records, tp, offset, f"{type(exc).__name__}: {exc}")
            if not got:
                break
            records += got[tp]
    return Found(records, None, 0, "")


async def hold_bad_batch(
    consumer: AIOKafkaConsumer,
    starts: Starts,
    before: Mapping[KafkaTopicPartition, int],
    max_records: int,
) -> list[ConsumerRecord[Any, Any]]:
    """After a fetch raised decoding: hold the partition of the bad batch at its offset;
    the records read before it, to be processed."""
    held = {KafkaTopicPartition(*tp) for tp in starts.blocked.held()}
    found = await find_bad_batch(consumer, before, held, max_records)
    if found.bad is not None:
        consumer.pause(found.bad)
        hold = Hold(Readiness.PARTITION_BLOCKED, found.offset, found.error, 0)
        await starts.hold(TopicPartition(*found.bad), hold)
    return found.records

"""A fetch that meets a position out of the log, or a batch it cannot decode, on stand-ins
for aiokafka's consumer (the fault suite runs both on a real broker)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.errors import CorruptRecordException, OffsetOutOfRangeError

from tests.unit.consume.standins import KTP, TP, Recorder, StandInConsumer, started_source
from worker.write.gaps import Gap, GapKind


async def test_kafkas_out_of_range_answer_resumes_from_the_log_start_with_a_gap(
    made: list[StandInConsumer],
) -> None:
    """Kafka answers a fetch past the log's end with OFFSET_OUT_OF_RANGE (aiokafka's reset
    off): the partition resumes from the log start, a log_reset recorded, a new epoch."""
    recorder = Recorder()
    source = await started_source(recorder, [TP])
    made[0].fetch_error = OffsetOutOfRangeError({KTP: 7})
    ends: dict[KafkaTopicPartition, int] = {KTP: 3}  # the log was created again: 3 records

    async def end_offsets(partitions: Iterable[KafkaTopicPartition]) -> dict[Any, int]:
        return {tp: ends[tp] for tp in partitions}

    async def log_start(partitions: Iterable[KafkaTopicPartition]) -> dict[Any, int]:
        return {tp: 0 for tp in partitions}

    made[0].end_offsets = end_offsets  # type: ignore[attr-defined]
    made[0].beginning_offsets = log_start  # type: ignore[method-assign]
    assert await source.fetch(0, 10) == []
    assert source._starts._ledger.gaps == [  # type: ignore[attr-defined]
        Gap(TP, 7, 0, GapKind.LOG_RESET, 0, 3)
    ]
    assert recorder.assigned[-1] == {TP: 0}


async def test_a_bad_batch_raised_across_a_rebalance_restores_where_the_rebalance_sought(
    made: list[StandInConsumer],
) -> None:
    """A fetch waits out a rebalance whose callback seeks the partition, then raises on a
    bad batch: the records it drained are lost, so the partition goes back to where the
    callback sought it (not known before the fetch began) before the batch is looked for."""
    source = await started_source(Recorder(), [TP])
    consumer = made[0]

    async def rebalance_then_corrupt() -> None:
        consumer.during_fetch = None
        await consumer.listener.on_partitions_assigned(consumer.owned)
        consumer.seeks.clear()
        consumer.fetch_error = CorruptRecordException("Invalid CRC")

    consumer.during_fetch = rebalance_then_corrupt
    assert await source.fetch(0, 10) == []
    assert consumer.seeks[0] == (KTP, 7)  # restored to the callback's seek, first thing

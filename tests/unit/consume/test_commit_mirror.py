"""The consumer's background commits to Kafka (for lag tools), on a stand-in for aiokafka.

Only the bookkeeping is under test: which offsets are committed, when, and that none
is lost when a commit is cut short. Talking to a real broker is the fault suite's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from aiokafka import OffsetAndMetadata
from aiokafka import TopicPartition as KafkaTopicPartition

from tests.unit.consume.standins import memory_starts
from worker.consume.consumer import KafkaSource
from worker.records import TopicPartition
from worker.settings import Settings

TP = TopicPartition("action-events", 0)
KTP = KafkaTopicPartition(*TP)


class StandInConsumer:
    """Owns some partitions; each commit waits for ``gate`` when one is set."""

    def __init__(self, owned: Iterable[KafkaTopicPartition]) -> None:
        self.owned = set(owned)
        self.committed: dict[KafkaTopicPartition, int] = {}
        self.calls = 0
        self.gate: asyncio.Event | None = None

    def assignment(self) -> set[KafkaTopicPartition]:
        return self.owned

    async def commit(self, offsets: Mapping[KafkaTopicPartition, OffsetAndMetadata]) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        self.committed.update({tp: meta.offset for tp, meta in offsets.items()})


async def source_with(consumer: StandInConsumer) -> KafkaSource:
    async def no_offsets(_: object) -> dict[TopicPartition, int]:
        return {}

    source = KafkaSource(
        Settings(_env_file=None),  # type: ignore[call-arg]
        starts=memory_starts(no_offsets),
        on_assigned=lambda _: None,
        on_revoked=lambda _: asyncio.sleep(0),
    )
    await source._consumer.stop()  # the real one, never started
    source._consumer = consumer  # type: ignore[assignment]
    return source


async def test_a_commit_cut_short_is_made_again() -> None:
    consumer = StandInConsumer([KTP])
    consumer.gate = asyncio.Event()  # the broker does not answer
    source = await source_with(consumer)
    source.commit({TP: 10})
    await source.flush_commits(0.05)
    assert consumer.committed == {}
    consumer.gate.set()  # it answers again
    await source.flush_commits(1)
    assert consumer.committed == {KTP: 10}


async def test_offsets_noted_during_a_commit_follow_it() -> None:
    consumer = StandInConsumer([KTP])
    consumer.gate = asyncio.Event()
    source = await source_with(consumer)
    source.commit({TP: 10})
    await asyncio.sleep(0)  # the first commit is in flight
    source.commit({TP: 20})
    consumer.gate.set()
    await source.flush_commits(1)
    assert consumer.committed == {KTP: 20}
    assert consumer.calls == 2


async def test_partitions_no_longer_owned_are_not_committed() -> None:
    consumer = StandInConsumer([])
    source = await source_with(consumer)
    source.commit({TP: 10})
    await source.flush_commits(1)
    consumer.owned.add(KTP)  # owned again later: the old offset is not told
    await source.flush_commits(1)
    assert consumer.calls == 0

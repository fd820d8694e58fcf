"""Stand-ins shared by the consumer's unit tests: a gap ledger in memory, the part of
aiokafka's subscription state the source reads (positions, high watermarks), a consumer,
and the pipeline's side of a source."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from types import SimpleNamespace
from typing import Any

from aiokafka import OffsetAndMetadata
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError

from worker.consume.blocked import BlockedPartitions
from worker.consume.consumer import KafkaSource
from worker.consume.starts import Starts
from worker.records import TopicPartition
from worker.service.health import Readiness
from worker.service.metrics import Metrics
from worker.settings import Settings
from worker.write.gaps import Gap, Recall


class MemoryLedger:
    def __init__(self) -> None:
        self.gaps: list[Gap] = []

    async def record(self, gap: Gap) -> None:
        self.gaps.append(gap)

    async def recall(self, tp: TopicPartition, offset: int, value: bytes | None) -> Recall:
        return Recall(known=True, stored_at_ms=None)

    async def latest(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        ids = {gap.tp: number for number, gap in enumerate(self.gaps, 1)}
        return {tp: ids[tp] for tp in partitions if tp in ids}


def memory_starts(
    load_offsets: Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int]]],
    policy: str = "earliest",
) -> Starts:
    return Starts(
        load_offsets=load_offsets,
        ledger=MemoryLedger(),
        blocked=BlockedPartitions(Readiness(), Metrics()),
        metrics=Metrics(),
        policy=policy,
    )


def subscription_state(reassignment_in_progress: bool = False) -> SimpleNamespace:
    """aiokafka's ``consumer._subscription``, with an assignment of no positions."""
    states: dict[Any, SimpleNamespace] = {}

    def state_value(tp: Any) -> SimpleNamespace:
        return states.setdefault(tp, SimpleNamespace(_position=None, highwater=None))

    assignment = SimpleNamespace(tps=states.keys(), state_value=state_value)
    return SimpleNamespace(
        reassignment_in_progress=reassignment_in_progress,
        subscription=SimpleNamespace(assignment=assignment),
    )


TP = TopicPartition("action-events", 0)
KTP = KafkaTopicPartition(*TP)


class StandInConsumer:
    """Enough of AIOKafkaConsumer for the source: start, subscribe, fetch, commit, stop."""

    refuse_start = False  # no broker answers

    def __init__(self, owned: Iterable[KafkaTopicPartition] = ()) -> None:
        self.owned = set(owned)
        self.listener: Any = None
        self.started = self.stopped = False
        self._subscription = subscription_state()
        # aiokafka's own background tasks: a done one means the consumer is broken.
        self._coordinator = SimpleNamespace(_coordination_task=None)
        self._client = SimpleNamespace(_sync_task=None)
        self._fetcher = SimpleNamespace(_fetch_task=None)
        self.fetch_error: Exception | None = None  # set: getmany raises it
        self.stop_gate: asyncio.Event | None = None  # set: stop waits for it
        self.on_commit: Any = None  # called in the commit, before it answers
        self.fetch_gate: asyncio.Event | None = None  # set: getmany waits for it
        self.fetches = 0
        self.during_fetch: Any = None  # awaited in getmany, before it answers or raises
        self.seeks: list[tuple[KafkaTopicPartition, int]] = []

    async def start(self) -> None:
        if self.refuse_start:
            raise KafkaConnectionError("no broker")
        self.started = True

    def subscribe(self, topics: Iterable[str], listener: Any) -> None:
        self.listener = listener

    async def stop(self) -> None:
        if self.stop_gate is not None:
            await self.stop_gate.wait()
        self.stopped = True

    async def getmany(
        self, *partitions: Any, timeout_ms: int, max_records: int
    ) -> dict[Any, list[Any]]:
        self.fetches += 1
        if self.during_fetch is not None:
            await self.during_fetch()
        if self.fetch_error is not None:
            raise self.fetch_error
        if self.fetch_gate is not None:
            await self.fetch_gate.wait()
        return {}

    def assignment(self) -> set[KafkaTopicPartition]:
        return self.owned

    def pause(self, *partitions: KafkaTopicPartition) -> None:
        pass

    def resume(self, *partitions: KafkaTopicPartition) -> None:
        pass

    def seek(self, partition: KafkaTopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))

    async def beginning_offsets(
        self, partitions: Iterable[KafkaTopicPartition]
    ) -> dict[KafkaTopicPartition, int]:
        return {tp: 7 for tp in partitions}  # the stored offsets: no log to confirm

    async def commit(self, offsets: Mapping[KafkaTopicPartition, OffsetAndMetadata]) -> None:
        if self.on_commit is not None:
            self.on_commit()
        raise CommitFailedError("not a member")


class Recorder:
    """The pipeline's side: what was revoked and assigned."""

    def __init__(self) -> None:
        self.revoked: list[set[TopicPartition]] = []
        self.assigned: list[dict[TopicPartition, int | None]] = []

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        self.revoked.append(partitions)

    async def load_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 7 for tp in partitions}


async def started_source(recorder: Recorder, owned: Iterable[TopicPartition]) -> KafkaSource:
    source = KafkaSource(
        Settings(_env_file=None),
        starts=memory_starts(recorder.load_offsets),
        on_assigned=recorder.assigned.append,
        on_revoked=recorder.on_revoked,
    )
    await source.start()
    first = source._consumer
    first.owned = {KafkaTopicPartition(*tp) for tp in owned}
    await first.listener.on_partitions_assigned(first.owned)
    return source

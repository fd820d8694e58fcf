"""Replacing a consumer out of its group, and stopping, on stand-ins for aiokafka's consumer.

What is under test is the source's bookkeeping: what is revoked, which consumer is
current, that no commit outlives the source. Real group membership is the
integration test's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import OffsetAndMetadata
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.errors import (
    CommitFailedError,
    CorruptRecordException,
    KafkaConnectionError,
    KafkaError,
    OffsetOutOfRangeError,
)
from structlog.testing import capture_logs

from tests.unit.consume.standins import memory_starts, subscription_state
from worker.consume import consumer as consumer_module
from worker.consume.consumer import KafkaSource
from worker.records import TopicPartition
from worker.settings import Settings
from worker.write.gaps import Gap, GapKind

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


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[StandInConsumer]:
    """Every consumer the source makes, in order (the first is made with the source)."""
    consumers: list[StandInConsumer] = []

    def new_consumer(_: Settings) -> StandInConsumer:
        consumers.append(StandInConsumer())
        return consumers[-1]

    monkeypatch.setattr(consumer_module, "_new_consumer", new_consumer)
    return consumers


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


async def test_a_broken_consumer_is_replaced(made: list[StandInConsumer]) -> None:
    """A fetch failing because aiokafka's coordinator task died leads to a new consumer."""
    recorder = Recorder()
    source = await started_source(recorder, [TP])
    made[0]._coordinator._coordination_task = asyncio.get_running_loop().create_future()
    made[0]._coordinator._coordination_task.set_result(None)
    made[0].fetch_error = KafkaError("Unexpected error during coordination")
    assert await source.fetch(0, 10) == []
    assert await source.fetch(0, 10) == []
    old, new = made
    assert (recorder.revoked, old.stopped, new.started) == ([{TP}], True, True)


async def test_a_consumer_whose_fetcher_died_is_replaced(made: list[StandInConsumer]) -> None:
    """A dead fetcher task returns nothing, with no error: the next fetch replaces it."""
    recorder = Recorder()
    source = await started_source(recorder, [TP])
    made[0]._fetcher._fetch_task = asyncio.get_running_loop().create_future()
    made[0]._fetcher._fetch_task.set_result(None)
    assert await source.fetch(0, 10) == []
    old, new = made
    assert (recorder.revoked, old.stopped, new.started) == ([{TP}], True, True)


async def test_a_fetch_error_of_a_working_consumer_is_raised(made: list[StandInConsumer]) -> None:
    """A KafkaError while aiokafka's tasks still run is not hidden by a replacement."""
    source = await started_source(Recorder(), [TP])
    made[0].fetch_error = KafkaError("corrupt record")
    with pytest.raises(KafkaError, match="corrupt record"):
        await source.fetch(0, 10)
    assert len(made) == 1


async def test_replacement_revokes_stops_and_joins_anew(made: list[StandInConsumer]) -> None:
    """The next fetch revokes what the old consumer held, stops it, starts a new one."""
    recorder = Recorder()
    source = await started_source(recorder, [TP])
    source.replace_consumer()
    assert await source.fetch(0, 10) == []
    old, new = made
    assert recorder.revoked == [{TP}]
    assert old.stopped
    assert new.started
    assert new.listener is not None


async def test_the_old_consumers_rebalances_are_ignored(made: list[StandInConsumer]) -> None:
    """A replaced consumer that wakes up cannot position or revoke anything any more."""
    recorder = Recorder()
    source = await started_source(recorder, [TP])
    source.replace_consumer()
    await source.fetch(0, 10)
    old, new = made
    await old.listener.on_partitions_revoked({KTP})
    await old.listener.on_partitions_assigned({KTP})
    assert recorder.revoked == [{TP}]  # the replacement's own revoke only
    assert recorder.assigned == [{TP: 7}]  # the first assignment only
    new.owned = {KTP}
    await new.listener.on_partitions_assigned({KTP})
    assert recorder.assigned == [{TP: 7}, {TP: 7}]


async def test_a_consumer_that_does_not_stop_is_abandoned(
    made: list[StandInConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stuck consumer that never finishes stopping does not keep its successor out."""
    monkeypatch.setattr(consumer_module, "STOP_TIMEOUT_S", 0)
    source = await started_source(Recorder(), [TP])
    made[0].stop_gate = asyncio.Event()  # never set
    source.replace_consumer()
    await source.fetch(0, 10)
    assert made[1].started


async def test_no_broker_for_the_replacement_fetches_nothing(
    made: list[StandInConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replacement that cannot reach a broker leaves the source empty, out of its group."""
    source = await started_source(Recorder(), [TP])
    monkeypatch.setattr(StandInConsumer, "refuse_start", True)  # the consumers made from now
    source.replace_consumer()
    assert await source.fetch(0, 10) == []
    assert await source.fetch(0, 10) == []  # nothing started: no fetch on it
    assert source.out_of_group()
    assert not made[1].started


async def test_a_cancel_as_a_commit_fails_ends_the_mirror(made: list[StandInConsumer]) -> None:
    """The mirror stops when cancelled, even as its commit fails (it once kept retrying)."""
    source = await started_source(Recorder(), [TP])
    made[0].on_commit = lambda: source._mirror._task.cancel()  # type: ignore[union-attr]
    source.commit({TP: 10})
    mirror = source._mirror._task
    assert mirror is not None
    for _ in range(5):  # a few turns of the loop: no timer involved
        await asyncio.sleep(0)
    assert mirror.cancelled()


async def test_a_commit_on_a_closed_connection_is_skipped(made: list[StandInConsumer]) -> None:
    """uvloop's RuntimeError from a commit on a closed connection is a skipped commit."""

    def closed() -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    source = await started_source(Recorder(), [TP])
    made[0].on_commit = closed
    with capture_logs() as logs:
        assert await source._mirror._commit({TP: 10}) is False
    assert [entry["error"] for entry in logs] == ["RuntimeError"]


async def test_offsets_noted_after_stop_are_not_mirrored(made: list[StandInConsumer]) -> None:
    """A write that finishes during shutdown starts no commit on the closed consumer."""
    source = await started_source(Recorder(), [TP])
    await source.stop()
    source.commit({TP: 10})
    assert source._mirror._task is None
    assert not source.out_of_group()  # a stopped source is not stuck


async def test_no_fetch_while_rejoining(made: list[StandInConsumer]) -> None:
    """Between two assignments the source returns nothing instead of waiting for the next."""
    source = await started_source(Recorder(), [TP])
    made[0]._subscription.reassignment_in_progress = True
    assert await source.fetch(0, 10) == []
    assert made[0].fetches == 0


async def test_a_fetch_held_by_a_rebalance_is_cut_short(
    made: list[StandInConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebalance that begins during a fetch does not hold it past its timeout."""
    monkeypatch.setattr(consumer_module, "FETCH_OVERRUN_S", 0)
    source = await started_source(Recorder(), [TP])
    made[0].fetch_gate = asyncio.Event()  # never set: aiokafka waits for an assignment
    assert await source.fetch(0, 10) == []
    assert made[0].fetches == 1


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

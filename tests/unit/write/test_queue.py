"""Queued writes: a part joins its lane's queued write until it starts, else it waits for room."""

from __future__ import annotations

import asyncio

import pytest

from worker.records import Batch, OffsetRange, RawRecord, Reject, RejectReason, TopicPartition
from worker.write.lanes import Lanes
from worker.write.queue import WriteQueue

A, B = TopicPartition("action-events", 0), TopicPartition("action-events", 1)


def part(tp: TopicPartition, start: int, end: int) -> Batch:
    """Events ``start`` to ``end - 1`` of ``tp``, as a batch part moving it from start to end."""
    rejects = [
        Reject(RawRecord(tp.topic, tp.partition, o, None, b"{", 0), RejectReason.INVALID_JSON, "")
        for o in range(start, end)
    ]
    return Batch(rejects=rejects, offsets={tp: OffsetRange(start, end)})


class Writer:
    """Records each write as it starts; each waits for ``release`` (set: none waits)."""

    def __init__(self) -> None:
        self.started: list[tuple[dict[TopicPartition, OffsetRange], str]] = []
        self.done: list[dict[TopicPartition, OffsetRange]] = []
        self.release = asyncio.Event()
        self.failure: Exception | None = None
        self._another_started = asyncio.Event()

    async def write(self, batch: Batch, tag: str) -> None:
        self.started.append((dict(batch.offsets), tag))
        self._another_started.set()
        await asyncio.wait_for(self.release.wait(), 5)
        if self.failure is not None:
            raise self.failure
        self.done.append(dict(batch.offsets))

    async def until_started(self, count: int) -> None:
        async def started() -> None:
            while len(self.started) < count:
                self._another_started.clear()
                await self._another_started.wait()

        await asyncio.wait_for(started(), 5)


def queue(writer: Writer, lanes: int = 1, limit: int = 10) -> WriteQueue[str]:
    return WriteQueue(Lanes(lanes), limit, writer.write)


async def test_a_part_joins_the_queued_write_until_that_starts() -> None:
    """Behind a write in flight, two parts make one write; once it starts, a third is apart."""
    writer = Writer()
    writes = queue(writer)
    assert writes.offer({0: part(A, 0, 2)}, "e1")
    await writer.until_started(1)
    assert writes.offer({0: part(A, 2, 4)}, "e1")  # queued behind the first
    assert writes.offer({0: part(A, 4, 7)}, "e1")  # joins it
    writer.release.set()
    await writer.until_started(2)
    assert writes.offer({0: part(A, 7, 8)}, "e1")  # the second has started: a new write
    assert await writes.wait_all(5)
    assert writer.done == [
        {A: OffsetRange(0, 2)},
        {A: OffsetRange(2, 7)},
        {A: OffsetRange(7, 8)},
    ]


async def test_a_part_of_other_epochs_does_not_join() -> None:
    """Parts tagged differently (a partition re-positioned between them) are written apart."""
    writer = Writer()
    writes = queue(writer)
    assert writes.offer({0: part(A, 0, 2)}, "e1")
    await writer.until_started(1)
    assert writes.offer({0: part(B, 0, 2)}, "e1")
    assert not writes.offer({0: part(B, 2, 4)}, "e2")  # no join, and the lane is full
    writer.release.set()
    assert await writes.wait_any(5)
    assert writes.offer({0: part(B, 2, 4)}, "e2")
    assert await writes.wait_all(5)
    assert [tag for _, tag in writer.started] == ["e1", "e1", "e2"]
    assert writer.done[1:] == [{B: OffsetRange(0, 2)}, {B: OffsetRange(2, 4)}]


async def test_a_full_queued_write_takes_no_more_and_a_full_lane_queues_nothing() -> None:
    """The queued write holds the limit: the next part waits for room, on every lane it needs."""
    writer = Writer()
    writes = queue(writer, lanes=2, limit=4)
    assert writes.offer({0: part(A, 0, 2)}, "e1")
    await writer.until_started(1)
    assert writes.offer({0: part(A, 2, 6)}, "e1")  # 4 events: full
    assert not writes.offer({0: part(A, 6, 7), 1: part(B, 0, 1)}, "e1")
    assert not writes.idle()
    writer.release.set()
    assert await writes.wait_all(5)
    assert writes.idle()
    assert writer.done == [{A: OffsetRange(0, 2)}, {A: OffsetRange(2, 6)}]  # B not queued


async def test_a_joined_partition_stays_on_its_lane_until_written() -> None:
    """B joined the queued write on lane 0: B's next part is split onto lane 0 as well."""
    writer = Writer()
    writes = queue(writer, lanes=2, limit=100)
    assert writes.offer({0: part(A, 0, 50)}, "e1")
    await writer.until_started(1)
    assert writes.offer({0: part(A, 50, 52)}, "e1")
    assert writes.offer({0: part(B, 0, 1)}, "e1")  # joins lane 0's queued write
    assert list(writes.split(part(B, 1, 2))) == [0]  # although lane 1 is empty
    writer.release.set()
    assert await writes.wait_all(5)
    writer.release.clear()
    assert writes.offer({0: part(A, 52, 60)}, "e1")
    assert list(writes.split(part(B, 1, 2))) == [1]  # B free again: to the emptiest lane
    writer.release.set()
    assert await writes.wait_all(5)


async def test_a_failed_write_is_raised_instead_of_queueing_behind_it() -> None:
    """After a write failed, an offer raises its error and queues nothing more."""
    writer = Writer()
    writer.failure = RuntimeError("boom")
    writer.release.set()
    writes = queue(writer)
    assert writes.offer({0: part(A, 0, 2)}, "e1")
    assert await writes.wait_all(5)
    with pytest.raises(RuntimeError, match="boom"):
        writes.offer({0: part(A, 2, 4)}, "e1")
    assert len(writer.started) == 1

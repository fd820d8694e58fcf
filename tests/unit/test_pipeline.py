"""The pipeline loop on in-memory fakes: retries, fencing, the breaker, and shutdown."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Collection, Mapping

import orjson
import pytest

from worker.devtools.eventgen import EventFactory
from worker.errors import BreakerTrippedError, PartitionsFencedError, TransientError
from worker.pipeline import Pipeline
from worker.records import Batch, RawRecord, TopicPartition, WriteResult
from worker.service.health import Readiness
from worker.service.stats import PipelineStats
from worker.settings import Settings
from worker.tenants.cache import TenantCache

TENANT = uuid.uuid4()
TP = TopicPartition("action-events", 0)


class FakeTenants:
    async def fetch(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, bool]:
        return {i: True for i in ids if i == TENANT}


class FakeSink:
    """Stores offsets with the same compare-and-set rule as PostgreSQL's sink."""

    def __init__(self) -> None:
        self.offsets: dict[TopicPartition, int] = {}
        self.rows: list[int] = []  # offsets of stored events
        self.batch_sizes: list[int] = []
        self.transient_failures = 0
        self.hold_first_write: asyncio.Event | None = None

    async def write(self, batch: Batch) -> WriteResult:
        if self.transient_failures:
            self.transient_failures -= 1
            raise TransientError("database unavailable")
        if self.hold_first_write is not None and not self.batch_sizes:
            await asyncio.wait_for(self.hold_first_write.wait(), 5)
        fenced = {tp for tp, r in batch.offsets.items() if self.offsets.get(tp) != r.start}
        if fenced:
            raise PartitionsFencedError(frozenset(fenced))
        for tp, r in batch.offsets.items():
            self.offsets[tp] = r.next
        items = batch.actions + batch.audits + batch.rejects
        self.rows += [item.record.offset for item in items]
        self.batch_sizes.append(len(items))
        return WriteResult(len(batch.actions), len(batch.audits), Counter())

    async def load(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.offsets[tp] for tp in partitions if tp in self.offsets}


class FakeSource:
    """One partition of pre-made records, positioned like a consumer, ``per_fetch`` at a time."""

    def __init__(
        self, records: list[RawRecord], sink: FakeSink, stop: asyncio.Event, per_fetch: int
    ) -> None:
        self.records, self.sink, self.stop, self.per_fetch = records, sink, stop, per_fetch
        self.position = 0
        self.committed: dict[TopicPartition, int] = {}
        self.all_fetched = asyncio.Event()
        self.ends = {TopicPartition(r.topic, r.partition): r.offset + 1 for r in records}

    async def fetch(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        end = self.position + min(max_records, self.per_fetch)
        chunk = self.records[self.position : end]
        self.position += len(chunk)
        if self.position == len(self.records):
            self.all_fetched.set()
        if not chunk:
            await asyncio.sleep(0.001)
            if self.committed == self.ends:
                self.stop.set()
        return chunk

    def highwaters(self) -> dict[TopicPartition, int]:
        return self.ends

    def pause(self) -> None: ...
    def resume(self) -> None: ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    async def reload(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        stored = await self.sink.load(partitions)
        self.position = stored.get(TP, 0)
        return stored


def records(count: int, bad: int = 0, partitions: int = 1) -> list[RawRecord]:
    """``count`` per partition, the partitions interleaved as a fetch may return them."""
    factory = EventFactory([TENANT], seed=1)
    values = [orjson.dumps(factory.action()) for _ in range(count - bad)] + [b"{"] * bad
    return [
        RawRecord(TP.topic, p, i, None, v, 0)
        for i, v in enumerate(values)
        for p in range(partitions)
    ]


def make(sink: FakeSink, **overrides: object) -> tuple[Pipeline, Readiness]:
    values: dict[str, object] = {
        "batch_max_events": 100,
        "batch_max_wait_ms": 5,
        "retry_backoff_initial_s": 0.001,
        "retry_backoff_max_s": 0.002,
    }
    settings = Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg, arg-type]
    cache = TenantCache(FakeTenants(), max_size=10, ttl_s=60, negative_ttl_s=1)
    readiness = Readiness()
    return Pipeline(settings, sink, cache, readiness, PipelineStats()), readiness


async def run(
    pipeline: Pipeline, recs: list[RawRecord], sink: FakeSink, per_fetch: int = 1000
) -> FakeSource:
    stop = asyncio.Event()
    source = FakeSource(recs, sink, stop, per_fetch)
    if sink.hold_first_write is not None:
        source.all_fetched = sink.hold_first_write
    pipeline.partitions_assigned(dict.fromkeys(source.ends))
    await asyncio.wait_for(pipeline.run(source, stop), 10)
    return source


async def test_everything_is_written_once_and_committed() -> None:
    """1,000 events in batches: each offset stored once, Kafka told the final offset."""
    sink = FakeSink()
    pipeline, _ = make(sink)
    source = await run(pipeline, records(1000), sink)
    assert sorted(sink.rows) == list(range(1000))
    assert source.committed == {TP: 1000}
    assert sink.offsets == {TP: 1000}


async def test_with_no_write_in_flight_a_fetch_is_written_at_once() -> None:
    """Idle lanes: batches close after a fetch or two, long before the 100 or the 10 s limit
    (a finished write frees its lane a loop turn later, so a second fetch may join)."""
    sink = FakeSink()
    pipeline, _ = make(sink, batch_max_wait_ms=10_000)
    await run(pipeline, records(50), sink, per_fetch=10)
    assert sink.batch_sizes[0] == 10
    assert max(sink.batch_sizes) <= 20
    assert sorted(sink.rows) == list(range(50))


async def test_while_a_write_is_in_flight_the_next_batch_gathers_what_arrives() -> None:
    """The first write waits until all 60 are fetched: the other 50 make one batch."""
    sink = FakeSink()
    sink.hold_first_write = asyncio.Event()
    pipeline, _ = make(sink, batch_max_wait_ms=200)
    await run(pipeline, records(60), sink, per_fetch=10)
    assert sink.batch_sizes == [10, 50]


async def test_parts_queued_on_a_busy_lane_join_into_one_write() -> None:
    """Two partitions on two lanes; while the first writes wait, the next two batches'
    parts (10 per lane each) join into one write per lane of 20 (the batch limit)."""
    sink = FakeSink()
    sink.hold_first_write = asyncio.Event()
    pipeline, _ = make(sink, batch_max_events=20, write_connections=2)
    await run(pipeline, records(30, partitions=2), sink, per_fetch=10)
    assert sorted(sink.rows) == sorted([*range(30), *range(30)])
    assert sorted(sink.batch_sizes) == [5, 5, 5, 5, 20, 20]
    assert pipeline.stats.batches == 6


class RepositionedWhileGathering(FakeSource):
    """The first write is held; meanwhile, the third fetch finds the partition assigned
    again at offset 10 (what PostgreSQL will hold once that write commits)."""

    def __init__(self, pipeline: Pipeline, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.pipeline = pipeline
        self.fetches = 0

    async def fetch(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        self.fetches += 1
        if self.fetches == 3:
            self.position = 10
            self.pipeline.partitions_assigned({TP: 10})
        elif self.fetches == 4 and self.sink.hold_first_write is not None:
            self.sink.hold_first_write.set()
        return await super().fetch(timeout_ms, max_records)


async def test_events_fetched_before_a_reposition_are_dropped_not_written() -> None:
    """Offsets 10-19, decoded into the gathering batch before the partition was re-positioned
    at 10, are dropped there and fetched again: each offset is stored once."""
    sink = FakeSink()
    sink.hold_first_write = asyncio.Event()
    pipeline, _ = make(sink, batch_max_wait_ms=200)
    stop = asyncio.Event()
    source = RepositionedWhileGathering(pipeline, records(100), sink, stop, 10)
    pipeline.partitions_assigned(dict.fromkeys(source.ends))
    await asyncio.wait_for(pipeline.run(source, stop), 10)
    assert source.fetches > 4
    assert sorted(sink.rows) == list(range(100))


async def test_transient_failures_are_retried_not_skipped() -> None:
    """Three failed attempts, then success: nothing lost, nothing doubled, retries counted."""
    sink = FakeSink()
    sink.transient_failures = 3
    pipeline, readiness = make(sink)
    await run(pipeline, records(300), sink)
    assert sorted(sink.rows) == list(range(300))
    assert pipeline.stats.retries == 3
    assert Readiness.DATABASE not in readiness.reasons


async def test_fenced_partition_restarts_from_the_stored_offset() -> None:
    """Another replica stored 150 meanwhile: our batch is dropped and we resume from 150."""
    sink = FakeSink()
    pipeline, _ = make(sink)
    sink.offsets[TP] = 150  # written by someone else before our first batch
    sink.rows = list(range(150))
    await run(pipeline, records(400), sink)
    assert sorted(sink.rows) == list(range(400))


async def test_breaker_stops_before_writing_a_garbage_batch() -> None:
    """Nearly all rejects over the window: the run raises and that batch is not written."""
    sink = FakeSink()
    pipeline, _ = make(sink, reject_breaker_min=50, reject_breaker_ratio=0.9)
    with pytest.raises(BreakerTrippedError):
        await run(pipeline, records(100, bad=100), sink)
    assert sink.rows == []

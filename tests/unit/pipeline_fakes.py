"""In-memory stand-ins for the pipeline's unit tests: consumer, sink, tenants and clock.

Time is a fake clock that moves only when the fake consumer says a fetch took time (an
empty fetch waits its whole timeout, as Kafka's does): batches close by deadline
without any test waiting for real time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Collection, Mapping

import orjson

from worker.devtools.eventgen import EventFactory
from worker.errors import PartitionsFencedError, TransientError
from worker.pipeline import KEEPALIVE_S, Pipeline
from worker.records import Batch, RawRecord, TopicPartition, WriteResult
from worker.service.health import Readiness
from worker.service.stats import PipelineStats
from worker.settings import Settings
from worker.tenants.cache import TenantCache

TENANT = uuid.uuid4()
TP = TopicPartition("action-events", 0)


class FakeClock:
    """Seconds that pass only when a fake says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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
        self.failure: Exception | None = None  # raised by every write when set

    async def write(self, batch: Batch) -> WriteResult:
        if self.failure is not None:
            raise self.failure
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
    """One partition of pre-made records, positioned like a consumer, ``per_fetch`` at a time.

    A fetch that returns records takes ``fetch_s`` of the clock, an empty one its whole
    timeout; paused, it returns nothing. Sets ``stop`` once everything is committed.
    """

    def __init__(
        self,
        records: list[RawRecord],
        sink: FakeSink,
        stop: asyncio.Event,
        per_fetch: int,
        clock: FakeClock,
        fetch_s: float = 0.0,
    ) -> None:
        self.records, self.sink, self.stop, self.per_fetch = records, sink, stop, per_fetch
        self.clock, self.fetch_s = clock, fetch_s
        self.position = 0
        self.committed: dict[TopicPartition, int] = {}
        self.all_fetched = asyncio.Event()
        self.ends = {TopicPartition(r.topic, r.partition): r.offset + 1 for r in records}
        self.timeouts: list[int] = []  # of each fetch, in ms
        self.paused = False
        self.seen: list[str] = []  # pause, resume, and each fetch while paused
        self.polled_while_paused = asyncio.Event()

    async def fetch(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        self.timeouts.append(timeout_ms)
        if self.paused:
            self.seen.append(f"fetch({timeout_ms}, {max_records})")
            self.polled_while_paused.set()
            await asyncio.sleep(0)
            return []
        end = self.position + min(max_records, self.per_fetch)
        chunk = self.records[self.position : end]
        self.position += len(chunk)
        if self.position == len(self.records):
            self.all_fetched.set()
        if chunk:
            self.clock.advance(self.fetch_s)
        else:
            self.clock.advance(timeout_ms / 1000)  # nothing arrived for the whole timeout
            await asyncio.sleep(0)
            if self.committed == self.ends:
                self.stop.set()
        return chunk

    def highwaters(self) -> dict[TopicPartition, int]:
        return self.ends

    def pause(self) -> None:
        self.paused = True
        self.seen.append("pause")

    def resume(self) -> None:
        self.paused = False
        self.seen.append("resume")

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


def make(
    sink: FakeSink, keepalive_s: float = KEEPALIVE_S, **overrides: object
) -> tuple[Pipeline, Readiness, FakeClock]:
    values: dict[str, object] = {
        "batch_max_events": 100,
        "batch_max_wait_ms": 5,
        "retry_backoff_initial_s": 0.001,
        "retry_backoff_max_s": 0.002,
    }
    settings = Settings(_env_file=None, **(values | overrides))  # type: ignore[arg-type]
    clock = FakeClock()
    cache = TenantCache(FakeTenants(), max_size=10, ttl_s=60, negative_ttl_s=1, clock=clock)
    readiness = Readiness()
    stats = PipelineStats()
    pipeline = Pipeline(
        settings, sink, cache, readiness, stats, clock=clock, keepalive_s=keepalive_s
    )
    return pipeline, readiness, clock


async def run(
    pipeline: Pipeline,
    clock: FakeClock,
    recs: list[RawRecord],
    sink: FakeSink,
    per_fetch: int = 1000,
    fetch_s: float = 0.0,
) -> FakeSource:
    stop = asyncio.Event()
    source = FakeSource(recs, sink, stop, per_fetch, clock, fetch_s)
    if sink.hold_first_write is not None:
        source.all_fetched = sink.hold_first_write
    pipeline.partitions_assigned(dict.fromkeys(source.ends))
    await asyncio.wait_for(pipeline.run(source, stop), 10)
    return source

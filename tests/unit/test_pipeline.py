"""The pipeline loop on in-memory fakes: batching, pausing, retries, fencing, the breaker.

The fakes' clock moves only when a fetch takes time: no test waits for a real deadline.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.pipeline_fakes import TP, FakeSink, FakeSource, make, records, run
from worker.errors import BreakerTrippedError
from worker.pipeline import Pipeline
from worker.records import RawRecord
from worker.service.health import Readiness


async def test_everything_is_written_once_and_committed() -> None:
    """1,000 events in batches: each offset stored once, Kafka told the final offset."""
    sink = FakeSink()
    pipeline, _, clock = make(sink)
    source = await run(pipeline, clock, records(1000), sink)
    assert sorted(sink.rows) == list(range(1000))
    assert source.committed == {TP: 1000}
    assert sink.offsets == {TP: 1000}


async def test_with_no_write_in_flight_a_fetch_is_written_at_once() -> None:
    """Idle lanes: batches close after a fetch or two, long before the 100 or the 10 s limit
    (a finished write frees its lane a loop turn later, so a second fetch may join)."""
    sink = FakeSink()
    pipeline, _, clock = make(sink, batch_max_wait_ms=10_000)
    await run(pipeline, clock, records(50), sink, per_fetch=10)
    assert sink.batch_sizes[0] == 10
    assert max(sink.batch_sizes) <= 20
    assert sorted(sink.rows) == list(range(50))


async def test_while_a_write_is_in_flight_the_next_batch_gathers_what_arrives() -> None:
    """The first write waits until all 60 are fetched: the other 50 make one batch."""
    sink = FakeSink()
    sink.hold_first_write = asyncio.Event()
    pipeline, _, clock = make(sink, batch_max_wait_ms=200)
    await run(pipeline, clock, records(60), sink, per_fetch=10)
    assert sink.batch_sizes == [10, 50]


async def test_a_batch_closes_when_its_time_is_up() -> None:
    """With a write in flight, a batch closes when its 40 ms are up, not at 100 events."""
    # Each fetch takes 15.625 ms of the fake clock and waits at most the time left.
    sink = FakeSink()
    sink.hold_first_write = asyncio.Event()
    pipeline, _, clock = make(sink, batch_max_wait_ms=40)
    source = await run(pipeline, clock, records(70), sink, per_fetch=10, fetch_s=1 / 64)
    # The first batch closed at once (no write in flight); then 40 - 15.625 = 24.375, ...
    assert source.timeouts[:7] == [40, 40, 24, 8, 40, 24, 8]
    assert sorted(sink.rows) == list(range(70))
    assert source.committed == {TP: 70}


async def test_parts_queued_on_a_busy_lane_join_into_one_write() -> None:
    """Two partitions on two lanes; while the first writes wait, the next two batches'
    parts (10 per lane each) join into one write per lane of 20 (the batch limit)."""
    sink = FakeSink()
    sink.hold_first_write = asyncio.Event()
    pipeline, _, clock = make(sink, batch_max_events=20, write_connections=2)
    await run(pipeline, clock, records(30, partitions=2), sink, per_fetch=10)
    assert sorted(sink.rows) == sorted([*range(30), *range(30)])
    assert sorted(sink.batch_sizes) == [5, 5, 5, 5, 20, 20]
    assert pipeline.stats.batches == 6


async def test_slow_writes_pause_the_consumer_and_keep_polling_it() -> None:
    """A lane full behind a blocked write: the consumer is paused, polled, resumed; none lost."""
    sink = FakeSink()
    release = sink.hold_first_write = asyncio.Event()
    # One lane, room for two writes: the third batch (a full one cannot join) must wait.
    pipeline, _, clock = make(sink, keepalive_s=0, batch_max_events=10, write_connections=1)
    stop = asyncio.Event()
    source = FakeSource(records(50), sink, stop, 10, clock)
    pipeline.partitions_assigned(dict.fromkeys(source.ends))
    running = asyncio.create_task(pipeline.run(source, stop))
    await asyncio.wait_for(source.polled_while_paused.wait(), 5)
    assert source.paused
    assert sink.rows == []  # the first write is still blocked
    assert source.position == 30  # nothing fetched while paused
    release.set()
    await asyncio.wait_for(running, 10)
    first_wait = source.seen[: source.seen.index("resume") + 1]
    assert first_wait[:2] == ["pause", "fetch(0, 1)"]  # paused, then kept polling
    assert source.seen[-1] == "resume"
    assert not source.paused
    assert sorted(sink.rows) == list(range(50))
    assert source.committed == {TP: 50}


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
    pipeline, _, clock = make(sink, batch_max_wait_ms=200)
    stop = asyncio.Event()
    source = RepositionedWhileGathering(pipeline, records(100), sink, stop, 10, clock)
    pipeline.partitions_assigned(dict.fromkeys(source.ends))
    await asyncio.wait_for(pipeline.run(source, stop), 10)
    assert source.fetches > 4
    assert sorted(sink.rows) == list(range(100))


async def test_transient_failures_are_retried_not_skipped() -> None:
    """Three failed attempts, then success: nothing lost, nothing doubled, retries counted."""
    sink = FakeSink()
    sink.transient_failures = 3
    pipeline, readiness, clock = make(sink)
    await run(pipeline, clock, records(300), sink)
    assert sorted(sink.rows) == list(range(300))
    assert pipeline.stats.retries == 3
    assert Readiness.DATABASE not in readiness.reasons


async def test_a_write_that_fails_for_good_stops_the_loop_with_its_error() -> None:
    """A non-transient error of a write is raised by the loop, and nothing is committed."""
    sink = FakeSink()
    sink.failure = ValueError("not retryable")
    pipeline, _, clock = make(sink)
    with pytest.raises(ValueError, match="not retryable"):
        await run(pipeline, clock, records(300), sink)
    assert sink.rows == []


async def test_fenced_partition_restarts_from_the_stored_offset() -> None:
    """Another replica stored 150 meanwhile: our batch is dropped and we resume from 150."""
    sink = FakeSink()
    pipeline, _, clock = make(sink)
    sink.offsets[TP] = 150  # written by someone else before our first batch
    sink.rows = list(range(150))
    await run(pipeline, clock, records(400), sink)
    assert sorted(sink.rows) == list(range(400))


async def test_breaker_stops_before_writing_a_garbage_batch() -> None:
    """Nearly all rejects over the window: the run raises and that batch is not written."""
    sink = FakeSink()
    pipeline, _, clock = make(sink, reject_breaker_min=50, reject_breaker_ratio=0.9)
    with pytest.raises(BreakerTrippedError):
        await run(pipeline, clock, records(100, bad=100), sink)
    assert sink.rows == []

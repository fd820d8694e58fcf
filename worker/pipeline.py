"""The one place that wires the stages into the main loop.

    fetch (consumer) -> decode -> resolve tenants -> build batch -> write (sink) -> note offsets

(the consumer tells Kafka the noted offsets in the background, for lag tools only).

Batches are written on lanes (``worker.write.lanes``: in order per partition, several
transactions at once) while the next is fetched and decoded. A batch closes when
full, when its time is up, or as soon as no write is in flight; under load, its
part for a lane joins that lane's queued write (``worker.write.queue``). A write is
retried with backoff for as long as the database is unavailable (fetching pauses, the
worker reports not ready); partitions another replica took are dropped, never
written (``worker.consume.positions`` keeps each partition's start and epoch). Data
only moves forward: no stage calls back into an earlier one.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Protocol, TypeVar

import structlog

from worker.consume.positions import Chunk, Epochs, Positions
from worker.decode.decoder import EventKind, decode_many
from worker.errors import PartitionsFencedError, TransientError
from worker.records import Batch, Decoded, RawRecord, TopicPartition, WriteResult
from worker.service.breaker import RejectBreaker
from worker.service.health import Readiness
from worker.service.retry import Backoff
from worker.service.stats import PipelineStats
from worker.settings import Settings
from worker.tenants.cache import TenantCache, TenantStatus, apply_tenants, tenant_ids
from worker.write.batching import without_partitions
from worker.write.lanes import Lanes
from worker.write.queue import WriteQueue

log = structlog.get_logger(__name__)
KEEPALIVE_S = 1.0  # how often a waiting loop still polls Kafka, well under max.poll.interval
# Decoding yields to the event loop this often (a few ms of CPU), so that the write in
# flight gets each of its round trips answered at once instead of after the whole batch.
YIELD_EVERY = 200


class Source(Protocol):
    """The consuming side, as the pipeline needs it."""

    async def fetch(self, timeout_ms: int, max_records: int) -> list[RawRecord]: ...
    def highwaters(self) -> dict[TopicPartition, int]: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...
    async def reload(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]: ...


class Sink(Protocol):
    """The writing side: one transaction per batch."""

    async def write(self, batch: Batch) -> WriteResult: ...


T = TypeVar("T")
A = TypeVar("A")


class Pipeline:
    """Owns the loop; ``Positions`` and ``WriteQueue`` keep its state, stages do the work.

    ``clock`` times batches and writes, and ``keepalive_s`` is how long a blocked loop
    waits for a write before polling the consumer again: tests replace both.
    """

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        tenants: TenantCache,
        readiness: Readiness,
        stats: PipelineStats,
        *,
        clock: Callable[[], float] = time.monotonic,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._tenants = tenants
        self._readiness = readiness
        self.stats = stats
        self._clock = clock
        self._keepalive_s = keepalive_s
        self._kinds = {
            settings.kafka_action_topic: EventKind.ACTION,
            settings.kafka_audit_topic: EventKind.AUDIT,
        }
        self._breaker = RejectBreaker(
            ratio=settings.reject_breaker_ratio, window=settings.reject_breaker_min
        )
        self._positions = Positions()
        self._writes: WriteQueue[Epochs] = WriteQueue(
            Lanes(settings.write_connections), settings.batch_max_events, self._write
        )
        self._source: Source | None = None

    # Called by the consumer during rebalances.

    def partitions_assigned(self, stored: dict[TopicPartition, int | None]) -> None:
        self._positions.assign(stored)
        self._readiness.clear(Readiness.NO_ASSIGNMENT)

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Let the writes in flight finish within the grace period, then forget the partitions."""
        if not await self._writes.wait_all(self._settings.shutdown_grace_s):
            log.warning("revoke_deadline_passed", partitions=len(revoked))
        self._positions.revoke(revoked)
        if not self._positions.owns_any():
            self._readiness.fail(Readiness.NO_ASSIGNMENT)

    # The loop.

    async def run(self, source: Source, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then write what is in hand within the grace period."""
        self._source = source
        while not stop.is_set():
            chunks = await self._collect(source, stop)
            decoded, epochs = self._positions.current(chunks)
            if decoded:
                batch = await self._prepare(decoded, epochs)
                parts = self._writes.split(batch)
                await self._wait_until(functools.partial(self._writes.offer, parts, epochs))
        await self._drain()

    async def _collect(self, source: Source, stop: asyncio.Event) -> list[Chunk]:
        """Fetch and decode until the batch is full, its time is up, or no write is in
        flight; remember each fetch's epochs.

        Closing as soon as the lanes are idle is group commit: under light load a
        batch is written as soon as it is fetched (latency), under heavy load the
        events that arrive while a write is in flight make the next, larger batch.
        Each fetch is decoded as it arrives, while the write in flight goes on, so
        that little is left to do between closing the batch and writing it.
        """
        limit = self._settings.batch_max_events
        deadline = self._clock() + self._settings.batch_max_wait_ms / 1000
        chunks: list[Chunk] = []
        count = 0
        while count < limit and not stop.is_set():
            remaining_ms = int((deadline - self._clock()) * 1000)
            if remaining_ms <= 0:
                break
            fetched = await source.fetch(remaining_ms, limit - count)
            records, epochs = self._positions.fetched(fetched)
            if records:
                self.stats.consumed(len(records))
                chunks.append((epochs, await self._decode(records)))
                count += len(records)
            await asyncio.sleep(0)  # a fetch from the buffer does not yield: the write may wait
            if count and self._writes.idle():
                break
        return chunks

    async def _decode(self, records: list[RawRecord]) -> list[Decoded]:
        decoded: list[Decoded] = []
        for start in range(0, len(records), YIELD_EVERY):
            chunk = records[start : start + YIELD_EVERY]
            decoded += decode_many(chunk, self._kinds, self._settings.max_event_bytes)
            await asyncio.sleep(0)  # let the write in flight take its next round trip
        return decoded

    async def _prepare(self, decoded: list[Decoded], epochs: Epochs) -> Batch:
        statuses = await self.retrying(self._tenants.resolve, tenant_ids(decoded))
        # A rebalance may have re-positioned partitions during the lookup: drop their
        # events before the breaker counts them (they will be fetched again).
        decoded = self._positions.still_current(decoded, epochs)
        # statuses has every tenant of the batch: when all are active, nothing changes.
        if any(status is not TenantStatus.ACTIVE for status in statuses.values()):
            decoded = apply_tenants(decoded, statuses)
        # The breaker judges before anything is written, so a tripped batch stays unconsumed.
        try:
            self._breaker.observe(decoded)
        finally:
            self.stats.breaker(self._breaker.reject_ratio, self._breaker.tripped)
        return self._positions.build(decoded, epochs)

    async def _wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait for writes to finish until ``condition`` holds; raise a failed write's error.

        The consumer's poll timer is kept alive meanwhile (it would otherwise leave the group).
        """
        paused = False
        while not condition():
            self._writes.raise_failure()
            if not await self._writes.wait_any(self._keepalive_s) and self._source is not None:
                # Paused partitions return nothing, but the poll keeps us in the group.
                self._source.pause()
                await self._source.fetch(0, 1)
                paused = True
        if paused and self._source is not None:
            self._source.resume()
        self._writes.raise_failure()

    async def _drain(self) -> None:
        try:
            # asyncio.timeout, not wait_for, which on Python 3.11 can lose a cancellation.
            async with asyncio.timeout(self._settings.shutdown_grace_s):
                await self._wait_until(self._writes.idle)
        except TimeoutError:
            log.warning("shutdown_grace_exceeded", note="unwritten events will be redelivered")

    async def _write(self, batch: Batch, epochs: Epochs) -> None:
        started = self._clock()
        while True:
            stale = self._positions.stale(batch.offsets, epochs)
            batch = without_partitions(batch, stale) if stale else batch
            if not batch.offsets:
                return
            try:
                result = await self.retrying(self._sink.write, batch)
                break
            except PartitionsFencedError as exc:
                await self._refence({TopicPartition(*tp) for tp in exc.partitions})
        seconds = self._clock() - started
        self.stats.written(batch, result, seconds)
        log.debug(
            "batch_written",
            events=len(batch),
            offsets={f"{tp.topic}[{tp.partition}]": r.next for tp, r in batch.offsets.items()},
            seconds=round(seconds, 3),
        )
        if self._source is not None:
            positions = {tp: r.next for tp, r in batch.offsets.items()}
            self._source.commit(positions)
            self.stats.lag(self._source.highwaters(), positions)

    async def _refence(self, fenced: set[TopicPartition]) -> None:
        """Another replica moved these partitions: restart them from what PostgreSQL holds."""
        log.warning("partitions_fenced", partitions=len(fenced))
        owned = self._positions.owned(fenced)
        self._positions.expire(fenced - owned)
        if self._source is not None and owned:
            stored = await self.retrying(self._source.reload, owned)
            # No await between the consumer's seeks and this: nothing is fetched in between.
            self._positions.assign({tp: stored.get(tp) for tp in owned})

    async def retrying(self, operation: Callable[[A], Awaitable[T]], argument: A) -> T:
        """Run until it succeeds; transient failures pause progress and mark us not ready."""
        backoff = Backoff(
            self._settings.retry_backoff_initial_s, self._settings.retry_backoff_max_s
        )
        while True:
            try:
                result = await operation(argument)
            except TransientError as exc:
                self._readiness.fail(Readiness.DATABASE)
                self.stats.retried()
                log.warning("transient_failure", error=str(exc), attempt=backoff.attempts + 1)
                await backoff.sleep()
                continue
            self._readiness.clear(Readiness.DATABASE)
            return result

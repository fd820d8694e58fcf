"""The one place that wires the stages into the main loop.

    fetch (consumer) -> decode -> resolve tenants -> build batch -> write (sink) -> note offsets

(the consumer tells Kafka the noted offsets in the background, for lag tools only).

Batches are written on lanes (``worker.write.lanes``: in order per partition, several
transactions at once) while the next is fetched and decoded. A batch closes when
full, when its time is up, or as soon as no write is in flight; under load, its
part for a lane joins that lane's queued write (up to a batch's size). A write is retried
with backoff for as long as the database is unavailable (fetching pauses, the
worker reports not ready); partitions another replica took are dropped, never
written. Data only moves forward: no stage calls back into an earlier one.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import operator
import os
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

import structlog

from worker.decode.decoder import EventKind, decode_many
from worker.errors import PartitionsFencedError, TransientError
from worker.records import Batch, Decoded, RawRecord, TopicPartition, WriteResult
from worker.service.breaker import RejectBreaker
from worker.service.health import Readiness
from worker.service.retry import Backoff
from worker.service.stats import PipelineStats
from worker.settings import Settings
from worker.tenants.cache import TenantCache, TenantStatus, apply_tenants, tenant_ids
from worker.write.batching import build_batch, join, split_into_lanes, without_partitions
from worker.write.lanes import Lanes

log = structlog.get_logger(__name__)
FAULT_EXIT_CODE = 86  # used only by the FAULT_EXIT_AFTER_DB_COMMIT test hook
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


Epochs = dict[TopicPartition, int]
T = TypeVar("T")
A = TypeVar("A")


@dataclass
class _Queued:
    """A write queued on a lane; until it starts, later parts for its lane may join it."""

    batch: Batch
    epochs: Epochs
    started: bool = False


class Pipeline:
    """Owns the loop and the per-partition positions; stages do the work.

    Each owned partition has a start (where its next batch begins, as stored in
    PostgreSQL) and an epoch, bumped whenever the consumer is re-positioned on
    it; records and batches of an older epoch are dropped, never written.
    """

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        tenants: TenantCache,
        readiness: Readiness,
        stats: PipelineStats,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._tenants = tenants
        self._readiness = readiness
        self.stats = stats
        self._kinds = {
            settings.kafka_action_topic: EventKind.ACTION,
            settings.kafka_audit_topic: EventKind.AUDIT,
        }
        self._breaker = RejectBreaker(
            ratio=settings.reject_breaker_ratio, window=settings.reject_breaker_min
        )
        self._starts: dict[TopicPartition, int | None] = {}
        self._epochs: Epochs = {}
        self._fetched: dict[TopicPartition, int] = {}  # next offset expected from the consumer
        self._lanes = Lanes(settings.write_connections)
        self._queued: dict[int, _Queued] = {}  # each lane's latest write
        self._source: Source | None = None

    # Called by the consumer during rebalances.

    def partitions_assigned(self, stored: dict[TopicPartition, int | None]) -> None:
        self._reposition(stored)
        self._readiness.clear(Readiness.NO_ASSIGNMENT)

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Let the writes in flight finish within the grace period, then forget the partitions."""
        if not await self._lanes.wait_all(self._settings.shutdown_grace_s):
            log.warning("revoke_deadline_passed", partitions=len(revoked))
        for tp in revoked:
            self._starts.pop(tp, None)
            self._fetched.pop(tp, None)
            self._epochs[tp] = self._epochs.get(tp, 0) + 1
        if not self._starts:
            self._readiness.fail(Readiness.NO_ASSIGNMENT)

    def _reposition(self, starts: Mapping[TopicPartition, int | None]) -> None:
        for tp, start in starts.items():
            self._starts[tp] = start
            self._epochs[tp] = self._epochs.get(tp, 0) + 1
            self._fetched[tp] = start or 0

    # The loop.

    async def run(self, source: Source, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then write what is in hand within the grace period."""
        self._source = source
        while not stop.is_set():
            chunks = await self._collect(source, stop)
            epochs = dict(self._epochs)
            decoded = self._current(chunks, epochs)
            if decoded:
                batch = await self._prepare(decoded, epochs)
                await self._submit(batch, epochs)
        await self._drain()

    async def _collect(
        self, source: Source, stop: asyncio.Event
    ) -> list[tuple[Epochs, list[Decoded]]]:
        """Fetch and decode until the batch is full, its time is up, or no write is in
        flight; remember each fetch's epochs.

        Closing as soon as the lanes are idle is group commit: under light load a
        batch is written as soon as it is fetched (latency), under heavy load the
        events that arrive while a write is in flight make the next, larger batch.
        Each fetch is decoded as it arrives, while the write in flight goes on, so
        that little is left to do between closing the batch and writing it.
        """
        limit = self._settings.batch_max_events
        deadline = time.monotonic() + self._settings.batch_max_wait_ms / 1000
        chunks: list[tuple[Epochs, list[Decoded]]] = []
        count = 0
        while count < limit and not stop.is_set():
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            records = self._unseen(await source.fetch(remaining_ms, limit - count))
            # Taken after the fetch: the consumer returns no record from before a seek,
            # so what it returns now belongs to the partitions' current epochs.
            epochs = dict(self._epochs)
            if records:
                self.stats.consumed(len(records))
                chunks.append((epochs, await self._decode(records)))
                count += len(records)
            await asyncio.sleep(0)  # a fetch from the buffer does not yield: the write may wait
            if count and self._lanes.idle():
                break
        return chunks

    def _unseen(self, records: list[RawRecord]) -> list[RawRecord]:
        """Each offset once: a fetch racing a seek can return a range twice."""
        unseen: list[RawRecord] = []
        # A fetch returns each partition's records together: one lookup per run of them.
        for key, run in itertools.groupby(records, _TOPIC_PARTITION):
            tp = TopicPartition(*key)
            expected = self._fetched.get(tp, 0)
            for r in run:
                if r.offset >= expected:
                    expected = r.offset + 1
                    unseen.append(r)
            self._fetched[tp] = expected
        return unseen

    async def _decode(self, records: list[RawRecord]) -> list[Decoded]:
        decoded: list[Decoded] = []
        for start in range(0, len(records), YIELD_EVERY):
            chunk = records[start : start + YIELD_EVERY]
            decoded += decode_many(chunk, self._kinds, self._settings.max_event_bytes)
            await asyncio.sleep(0)  # let the write in flight take its next round trip
        return decoded

    def _current(self, chunks: list[tuple[Epochs, list[Decoded]]], epochs: Epochs) -> list[Decoded]:
        """The decoded events whose partition was not re-positioned since they were fetched."""
        current: list[Decoded] = []
        for fetched_in, decoded in chunks:
            if fetched_in == epochs:
                current += decoded
            else:
                current += [
                    d for d in decoded if self._same_epoch(fetched_in, _partition(d.record))
                ]
        return current

    def _same_epoch(self, epochs: Epochs, tp: TopicPartition) -> bool:
        return epochs.get(tp) == self._epochs.get(tp)

    async def _prepare(self, decoded: list[Decoded], epochs: Epochs) -> Batch:
        statuses = await self.retrying(self._tenants.resolve, tenant_ids(decoded))
        if epochs != self._epochs:
            # A rebalance re-positioned partitions during the lookup: their events are stale.
            decoded = [d for d in decoded if self._same_epoch(epochs, _partition(d.record))]
        # statuses has every tenant of the batch: when all are active, nothing changes.
        if any(status is not TenantStatus.ACTIVE for status in statuses.values()):
            decoded = apply_tenants(decoded, statuses)
        # The breaker judges before anything is written, so a tripped batch stays unconsumed.
        try:
            self._breaker.observe(decoded)
        finally:
            self.stats.breaker(self._breaker.reject_ratio, self._breaker.tripped)
        batch = build_batch(decoded, self._starts)
        for tp, offsets in batch.offsets.items():
            self._starts[tp] = offsets.next
        return batch

    async def _submit(self, batch: Batch, epochs: Epochs) -> None:
        """Queue the batch's writes on the lanes of its partitions, once they have room.

        A part joins its lane's queued write while that has not started and holds
        fewer than ``batch_max_events``: under load a transaction then holds about a
        batch instead of one lane's share, and PostgreSQL's fixed cost per
        transaction (a dozen round trips) is paid half as often.
        """
        parts = split_into_lanes(batch, self._lanes.assign)
        await self._wait_until(
            lambda: self._lanes.has_room(
                lane for lane in parts if self._open_write(lane, epochs) is None
            )
        )
        for lane, part in parts.items():
            if (queued := self._open_write(lane, epochs)) is not None:
                queued.batch = join(queued.batch, part)
                self._lanes.hold(lane, part.offsets, len(part))
            else:
                queued = self._queued[lane] = _Queued(part, epochs)
                write = functools.partial(self._start, lane, queued)
                self._lanes.submit(lane, write, part.offsets, len(part))

    def _open_write(self, lane: int, epochs: Epochs) -> _Queued | None:
        """The lane's queued write, if a part of the same epochs may still join it."""
        queued = self._queued.get(lane)
        if queued is None or queued.started or queued.epochs != epochs:
            return None
        return queued if len(queued.batch) < self._settings.batch_max_events else None

    async def _start(self, lane: int, queued: _Queued) -> None:
        queued.started = True
        try:
            await self._write(queued.batch, queued.epochs)
        finally:
            if self._queued.get(lane) is queued:  # drop it: its events may be freed now
                del self._queued[lane]

    async def _wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait for writes to finish until ``condition`` holds; raise a failed write's error.

        The consumer's poll timer is kept alive meanwhile (it would otherwise leave the group).
        """
        paused = False
        while not condition():
            self._lanes.raise_failure()
            if not await self._lanes.wait_any(KEEPALIVE_S) and self._source is not None:
                # Paused partitions return nothing, but the poll keeps us in the group.
                self._source.pause()
                await self._source.fetch(0, 1)
                paused = True
        if paused and self._source is not None:
            self._source.resume()
        self._lanes.raise_failure()

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(
                self._wait_until(self._lanes.idle), self._settings.shutdown_grace_s
            )
        except TimeoutError:
            log.warning("shutdown_grace_exceeded", note="unwritten events will be redelivered")

    async def _write(self, batch: Batch, epochs: Epochs) -> None:
        started = time.monotonic()
        while True:
            stale = {tp for tp in batch.offsets if not self._same_epoch(epochs, tp)}
            batch = without_partitions(batch, stale) if stale else batch
            if not batch.offsets:
                return
            try:
                result = await self.retrying(self._sink.write, batch)
                break
            except PartitionsFencedError as exc:
                await self._refence({TopicPartition(*tp) for tp in exc.partitions})
        self.stats.written(batch, result, time.monotonic() - started)
        log.debug(
            "batch_written",
            events=len(batch),
            offsets={f"{tp.topic}[{tp.partition}]": r.next for tp, r in batch.offsets.items()},
            seconds=round(time.monotonic() - started, 3),
        )
        if self._settings.fault_exit_after_db_commit:
            os._exit(FAULT_EXIT_CODE)
        if self._source is not None:
            positions = {tp: r.next for tp, r in batch.offsets.items()}
            self._source.commit(positions)
            self.stats.lag(self._source.highwaters(), positions)

    async def _refence(self, fenced: set[TopicPartition]) -> None:
        """Another replica moved these partitions: restart them from what PostgreSQL holds."""
        log.warning("partitions_fenced", partitions=len(fenced))
        owned = {tp for tp in fenced if tp in self._starts}
        for tp in fenced - owned:
            self._epochs[tp] = self._epochs.get(tp, 0) + 1
        if self._source is not None and owned:
            stored = await self.retrying(self._source.reload, owned)
            # No await between the consumer's seeks and this: nothing is fetched in between.
            self._reposition({tp: stored.get(tp) for tp in owned})

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


_TOPIC_PARTITION = operator.attrgetter("topic", "partition")


def _partition(record: RawRecord) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)

"""Where each partition resumes: PostgreSQL's stored offset, when the log still holds it.

With ``S`` the stored next offset and the log holding offsets ``[start, end)``:

- no ``S`` (a new group or partition): from ``start``; nothing is missing;
- ``start <= S <= end``: from ``S``;
- ``S < start``: retention deleted records never read: from ``start``, gap ``retention``;
- ``S > end``: not the log ``S`` was read from (a re-created topic, another cluster, a
  truncated log): from ``start``, gap ``log_reset``. Rows are keyed by event id, so
  events read again change nothing.

A gap is recorded (``worker.write.gaps``), counted and logged before the partition
moves; with ``OFFSET_RESET_POLICY=fail`` the partition is held for an operator instead.

The log start comes from the broker's ListOffsets, checked at every assignment. The
log end is taken only from a fetch made at the position (the broker's out-of-range
answer, or the high watermark it returns below the position): ListOffsets' end is
not exact on every broker (Tansu answers the last batch's base offset plus one), and
a position past a wrong end would record a gap that is not one.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any, Protocol, TypeVar

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition

from worker.consume.blocked import BlockedPartitions, Hold
from worker.consume.identity import Witness, another_log, read_record
from worker.consume.membership import fetch_states, seek_afresh
from worker.errors import PartitionsFencedError
from worker.records import TopicPartition
from worker.service.health import Readiness
from worker.service.metrics import Metrics
from worker.settings import Settings
from worker.write.gaps import Gap, GapKind, GapLedger

log = structlog.get_logger(__name__)
LoadOffsets = Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int]]]
T = TypeVar("T")
A = TypeVar("A")
Retrying = Callable[[Callable[[A], Awaitable[T]], A], Awaitable[T]]
FENCED_RETRIES = 3  # another replica moving the partition meanwhile: read it again


class StoredOffsets(Protocol):
    async def load_offsets(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]: ...


class Ledger(Witness, Protocol):
    async def record(self, gap: Gap) -> None: ...
    async def latest(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]: ...


def misfit(stored: int, log_start: int, log_end: int | None) -> GapKind | None:
    """Why the log cannot continue from ``stored``, if it cannot."""
    if stored < log_start:
        return GapKind.RETENTION
    if log_end is not None and stored > log_end:
        return GapKind.LOG_RESET
    return None


class Starts:
    """Positions a consumer's partitions where they resume (see the module docstring)."""

    def __init__(
        self,
        *,
        load_offsets: LoadOffsets,
        ledger: Ledger,
        blocked: BlockedPartitions,
        metrics: Metrics,
        policy: str,
        retrying: Retrying[Any, Any] | None = None,
    ) -> None:
        self._load_offsets = load_offsets
        self._ledger = ledger
        self.blocked = blocked
        self._metrics = metrics
        self._policy = policy
        self._retrying = retrying or _once  # the pipeline's: waits out a database outage
        # Assigned at a stored offset past the log start, not confirmed yet (``identity``).
        self.unconfirmed: dict[TopicPartition, int] = {}

    @classmethod
    def of_group(
        cls,
        settings: Settings,
        pool: asyncpg.Pool,
        sink: StoredOffsets,
        retrying: Retrying[Any, Any],
        readiness: Readiness,
        metrics: Metrics,
    ) -> Starts:
        """The worker's: offsets and gaps of its group, waiting out database outages."""
        return cls(
            load_offsets=lambda tps: retrying(sink.load_offsets, tps),
            ledger=GapLedger(
                pool, settings.kafka_group_id, in_transaction=settings.transaction_pooling
            ),
            blocked=BlockedPartitions(readiness, metrics),
            metrics=metrics,
            policy=settings.offset_reset_policy,
            retrying=retrying,
        )

    async def position(
        self,
        consumer: AIOKafkaConsumer,
        partitions: Collection[TopicPartition],
        log_ends: Mapping[TopicPartition, int] | None = None,
        *,
        replaced: Collection[TopicPartition] = (),
        confirm: bool = False,
    ) -> dict[TopicPartition, tuple[int, int | None]]:
        """Seek each partition where it resumes; return, for those not held for an operator,
        the offset sought and the stored offset the pipeline starts batches from (None: none).
        ``replaced``: known to be another log. ``confirm``: those that resume past the log
        start are left to ``confirm_logs`` (an assignment: the log may have changed).

        The seeks happen at the very end, with no await after them: the caller can record
        the new positions before any record from them is returned.
        """
        stored = await self._load_offsets(list(partitions))
        kafka_tps = [KafkaTopicPartition(*tp) for tp in partitions]
        starts = await consumer.beginning_offsets(kafka_tps) if kafka_tps else {}
        seeks: dict[TopicPartition, tuple[int, int | None]] = {}
        for tp in partitions:
            log_start = starts[KafkaTopicPartition(*tp)]
            end = (log_ends or {}).get(tp)
            seeks[tp] = await self._resume(tp, stored.get(tp), log_start, end, tp in replaced)
            if confirm and seeks[tp][0] > log_start and tp not in self.blocked.held():
                self.unconfirmed[tp] = seeks[tp][0]
        held = consumer.assignment()  # a partition revoked meanwhile cannot be positioned
        for tp, (offset, _) in seeks.items():
            if KafkaTopicPartition(*tp) in held:
                seek_afresh(consumer, KafkaTopicPartition(*tp), offset)
        holds = self.blocked.held()
        return {tp: seek for tp, seek in seeks.items() if tp not in holds}

    def beyond_end(self, consumer: AIOKafkaConsumer) -> dict[KafkaTopicPartition, int]:
        """Partitions not held whose position is past the end a fetch at it reported."""
        held = self.blocked.held()
        return {
            tp: end
            for tp, (at, end) in fetch_states(consumer).items()
            if end is not None and at > end and TopicPartition(*tp) not in held
        }

    async def confirm_logs(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """Read the record before each unconfirmed position: those PostgreSQL knows are
        positioned there again and resumed; another log's are returned, paused."""
        replaced = []
        while self.unconfirmed:
            tp, offset = self.unconfirmed.popitem()
            kafka_tp = KafkaTopicPartition(*tp)
            if kafka_tp not in consumer.assignment() or tp in self.blocked.held():
                continue
            record = await read_record(consumer, kafka_tp, offset - 1)
            if record is not None:
                recall_at = functools.partial(self._ledger.recall, tp, offset - 1)
                recall = await self._retrying(recall_at, record.value)
                if another_log(record, recall):
                    replaced.append(tp)
                    continue
            if kafka_tp in consumer.assignment():
                seek_afresh(consumer, kafka_tp, offset)
                consumer.resume(kafka_tp)
        return replaced

    async def _resume(
        self,
        tp: TopicPartition,
        stored: int | None,
        log_start: int,
        log_end: int | None,
        replaced: bool,
    ) -> tuple[int, int | None]:
        """Where to seek, and the stored offset batches start from; records a gap on the way."""
        for _ in range(FENCED_RETRIES):
            kind = GapKind.LOG_RESET if replaced and stored is not None else None
            kind = kind or (None if stored is None else misfit(stored, log_start, log_end))
            if stored is None or kind is None:
                return (log_start if stored is None else stored), stored
            gap = Gap(tp, stored, log_start, kind, log_start, log_end)
            if self._policy == "fail":
                await self._hold(gap)
                return stored, stored
            try:
                await self._retrying(self._ledger.record, gap)
            except PartitionsFencedError:
                stored = (await self._load_offsets([tp])).get(tp)
                continue
            self._note(gap)
            return log_start, log_start
        # Moved by someone else each time: the owner's next write is fenced and comes back here.
        return (log_start if stored is None else stored), stored

    def _note(self, gap: Gap) -> None:
        self._metrics.offset_gaps.labels(gap.kind.value).inc()
        log.error(
            "offset_gap",
            kind=gap.kind.value,
            topic=gap.tp.topic,
            partition=gap.tp.partition,
            stored_offset=gap.stored,
            resumed_offset=gap.resumed,
            log_start=gap.log_start,
            log_end=gap.log_end,
        )

    async def _hold(self, gap: Gap) -> None:
        where = f"log holds [{gap.log_start}, {'?' if gap.log_end is None else gap.log_end})"
        detail = f"{gap.kind.value}: stored offset {gap.stored}, {where}"
        await self.hold(gap.tp, Hold(Readiness.OFFSET_OUT_OF_RANGE, gap.stored or 0, detail, 0))

    async def hold(self, tp: TopicPartition, hold: Hold) -> None:
        """Hold the partition until a gap newer than its latest one is recorded for it. A
        partition held already keeps its hold: a newer mark could hide the operator's gap."""
        if tp in self.blocked.held():
            return
        marks = await self._retrying(self._ledger.latest, [tp])
        self.blocked.hold(tp, hold._replace(gap_mark=marks.get(tp, 0)))

    async def acted_on(self) -> list[TopicPartition]:
        """Release the held partitions an operator gave a new position (a newer gap)."""
        held = self.blocked.held()
        latest = await self._retrying(self._ledger.latest, list(held))
        released = [tp for tp, hold in held.items() if latest.get(tp, 0) > hold.gap_mark]
        for tp in released:
            self.blocked.release(tp)
        return released

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        """No longer ours: nothing of them is held or left to confirm here."""
        for tp in partitions:
            self.blocked.release(tp)
            self.unconfirmed.pop(tp, None)


async def _once(operation: Callable[[A], Awaitable[T]], argument: A) -> T:
    return await operation(argument)

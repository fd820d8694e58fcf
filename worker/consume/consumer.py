"""The Kafka side of the worker: group membership, seeking to PostgreSQL's offsets, fetching.

Contract: offsets are never committed automatically. On assignment each
partition is positioned at the next_offset stored in PostgreSQL (the source of
truth), or at the beginning when none is stored. ``commit`` afterwards only
notes what PostgreSQL already holds; a background task tells Kafka, so that lag
tools see progress. A write never waits for Kafka: a broker that is slow or
gone must not hold events back from PostgreSQL (a commit can hang for as long as
the coordinator is unreachable). ``fetch`` does not block longer than asked (aiokafka's
would wait for the end of a rebalance, however long), except to replace the consumer.

A consumer out of its group for too long (aiokafka can lose its membership and never
rejoin) is replaced when the watchdog asks: what it held is revoked as in a rebalance,
and a new consumer joins, whose assignment seeks to PostgreSQL's offsets again. This is
done in ``fetch``, on the loop's own task: no fetch runs on a consumer being stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping

import structlog
from aiokafka import AIOKafkaConsumer, OffsetAndMetadata
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.errors import KafkaError

from worker.consume.kafka_config import new_consumer as _new_consumer
from worker.consume.membership import is_broken, is_member, is_rejoining
from worker.consume.rebalance import Rebalance
from worker.records import RawRecord, TopicPartition
from worker.service.supervisor import watch
from worker.settings import Settings

log = structlog.get_logger(__name__)
_new = tuple.__new__
COMMIT_TIMEOUT_S = 5.0  # one commit to Kafka; a normal one takes milliseconds
COMMIT_RETRY_S = 1.0  # pause before telling Kafka again after a failed commit
STOP_TIMEOUT_S = 10.0  # a consumer stuck out of its group may never finish stopping
FETCH_OVERRUN_S = 0.1  # past the fetch's own timeout: aiokafka is waiting for a rebalance

LoadOffsets = Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int]]]
OnAssigned = Callable[[dict[TopicPartition, int | None]], None]
OnRevoked = Callable[[set[TopicPartition]], Awaitable[None]]


class KafkaSource:
    """One consumer in the group, over the action and audit topics."""

    def __init__(
        self,
        settings: Settings,
        *,
        load_offsets: LoadOffsets,
        on_assigned: OnAssigned,
        on_revoked: OnRevoked,
    ) -> None:
        self._settings = settings
        self._topics = (settings.kafka_action_topic, settings.kafka_audit_topic)
        self._load_offsets = load_offsets
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._consumer = _new_consumer(settings)
        self._started = False
        self._closed = False
        self._replace = False  # asked for a new consumer, made at the next fetch
        self._owned: set[TopicPartition] = set()  # assigned by the group, not revoked since
        self._positioned: dict[TopicPartition, int] = {}  # last seeks, for the stall watch
        self._unmirrored: dict[TopicPartition, int] = {}  # noted, not yet told to Kafka
        self._mirroring: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe(self._topics, listener=Rebalance(self, self._consumer))
        self._started = True

    async def stop(self) -> None:
        """Tell Kafka the last offsets, leave the group, close, each within its timeout; later
        notes stay unmirrored (a write finishing during shutdown: its commit would be retried)."""
        await self.flush_commits()
        self._closed = True
        try:
            # LeaveGroup to a coordinator that does not answer would wait for aiokafka's
            # request timeout (40 s); the group notices a member gone by its session timeout.
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self._consumer.stop()
        except (TimeoutError, KafkaError, asyncio.CancelledError) as exc:
            # With no broker, aiokafka's fetcher.close re-raises its own fetch task's
            # cancellation; only a cancellation of this task goes on.
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task and task.cancelling():
                raise
            log.warning("consumer_stop_abandoned", error=type(exc).__name__)

    def is_current(self, consumer: AIOKafkaConsumer) -> bool:
        return consumer is self._consumer

    def out_of_group(self) -> bool:
        """Not a member of the group's current generation: joining, rebalancing, or lost."""
        return not self._closed and not (self._started and is_member(self._consumer))

    def replace_consumer(self) -> None:
        """Have a new consumer join in place of this one, at the next fetch."""
        self._replace = True

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(*tp) for tp in self._consumer.assignment()}

    async def fetch(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        """Up to ``max_records`` messages, waiting at most ``timeout_ms`` for the first."""
        if self._started and not self._replace and is_broken(self._consumer):
            log.warning("consumer_broken")  # see below; a dead fetcher raises nothing
            self._replace = True
        if self._replace:
            await self._replace_consumer()
        # Not started: the replacement could not reach a broker yet.
        if not self._started or is_rejoining(self._consumer):
            await asyncio.sleep(timeout_ms / 1000)
            return []
        try:
            # A rebalance that begins during the fetch would hold it until it ends.
            async with asyncio.timeout(timeout_ms / 1000 + FETCH_OVERRUN_S):
                batches = await self._consumer.getmany(
                    timeout_ms=timeout_ms, max_records=max_records
                )
        except TimeoutError:
            return []
        except KafkaError as exc:
            if not is_broken(self._consumer):
                raise
            # aiokafka's own tasks died (seen: uvloop's RuntimeError on a connection the
            # broker closed); a new consumer is exact: it seeks to PostgreSQL's offsets.
            log.warning("consumer_broken", error=type(exc).__name__)
            self._replace = True
            return []
        # tuple.__new__: the NamedTuple's own __new__ is Python code, run per message.
        return [
            _new(RawRecord, (m.topic, m.partition, m.offset, m.key, m.value, m.timestamp))
            for messages in batches.values()
            for m in messages
        ]

    async def _replace_consumer(self) -> None:
        """Revoke what the old consumer held (as a rebalance would), stop it, join anew."""
        self._replace = False
        old, owned = self._consumer, self._owned
        # From here on the old consumer's rebalances are ignored: it is not current.
        self._consumer, self._started, self._owned = _new_consumer(self._settings), False, set()
        await self._stop_mirror()  # what it did not tell Kafka, the new consumer will
        if owned:
            await self._on_revoked(owned)
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await old.stop()
        except (TimeoutError, KafkaError) as exc:
            log.warning("old_consumer_abandoned", error=type(exc).__name__)
        try:
            await self.start()
        except KafkaError as exc:  # the watchdog asks again after a whole timeout
            log.warning("consumer_not_replaced", error=type(exc).__name__)
            return
        log.info("consumer_replaced", revoked=_names(owned))

    def highwaters(self) -> dict[TopicPartition, int]:
        """The log end of each owned partition, as last seen by fetches (for lag)."""
        ends = {tp: self._consumer.highwater(tp) for tp in self._consumer.assignment()}
        return {TopicPartition(*tp): end for tp, end in ends.items() if end is not None}

    def positioned(self) -> dict[TopicPartition, int]:
        """Where each partition was last positioned: PostgreSQL's offset, or the beginning."""
        return dict(self._positioned)

    async def probe(self) -> set[str]:
        """Ask the cluster for its metadata, the topics it has: raises when no broker answers."""
        return set(await self._consumer.topics())

    def pause(self) -> None:
        self._consumer.pause(*self._consumer.assignment())

    def resume(self) -> None:
        self._consumer.resume(*self._consumer.assignment())

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Note PostgreSQL's new offsets; the background mirror tells Kafka (for lag tools)."""
        self._unmirrored.update(offsets)
        self._mirror_soon()

    async def flush_commits(self, within_s: float = COMMIT_TIMEOUT_S) -> None:
        """Give the mirror ``within_s`` to tell Kafka what is noted, then stop it."""
        self._mirror_soon()
        if self._mirroring is not None:
            await asyncio.wait({self._mirroring}, timeout=within_s)
        await self._stop_mirror()

    async def _stop_mirror(self) -> None:
        if self._mirroring is not None:
            self._mirroring.cancel()
            await asyncio.wait({self._mirroring})  # done, so the next note starts a mirror

    def _mirror_soon(self) -> None:
        if self._closed or not self._unmirrored:
            return
        if self._mirroring is None or self._mirroring.done():
            self._mirroring = asyncio.create_task(self._mirror())
            watch(self._mirroring, "kafka_commit_mirror")  # it never raises, unless a bug

    async def _mirror(self) -> None:
        """Commit the latest noted offsets until none are left; never raises.

        An offset is forgotten only once Kafka has it (or its partition is no longer
        ours), so that a commit cut short by ``flush_commits`` is made again later.
        """
        while self._unmirrored:
            offsets = dict(self._unmirrored)
            if not await self._commit(offsets):
                await asyncio.sleep(COMMIT_RETRY_S)
                continue
            for tp, offset in offsets.items():
                if self._unmirrored.get(tp) == offset:  # not noted again meanwhile
                    del self._unmirrored[tp]

    async def _commit(self, offsets: Mapping[TopicPartition, int]) -> bool:
        """One commit of the offsets of partitions still owned; False when it failed."""
        owned = self._consumer.assignment()
        to_commit = {
            KafkaTopicPartition(*tp): OffsetAndMetadata(offset, "")
            for tp, offset in offsets.items()
            if KafkaTopicPartition(*tp) in owned
        }
        if not to_commit:
            return True
        try:
            # Not wait_for: on Python 3.11 it loses a cancellation that arrives as the commit
            # fails, and the mirror then retried forever, keeping the process from exiting.
            async with asyncio.timeout(COMMIT_TIMEOUT_S):
                await self._consumer.commit(to_commit)
        except (KafkaError, OSError, RuntimeError) as exc:
            # Best effort (lag tools only); uvloop raises RuntimeError on a closed connection.
            log.info("kafka_commit_skipped", error=type(exc).__name__)
            return False
        return True

    async def reload(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        """Position the partitions at PostgreSQL's offsets again (after being fenced).

        The seeks happen at the very end, with no await after them: the caller
        can record the new positions before any record from them is returned.
        """
        stored = await self._load_offsets(list(partitions))
        await self._seek(self._consumer, partitions, stored)
        return stored

    async def _seek(
        self,
        consumer: AIOKafkaConsumer,
        partitions: Collection[TopicPartition],
        stored: Mapping[TopicPartition, int],
    ) -> None:
        missing = [KafkaTopicPartition(*tp) for tp in partitions if tp not in stored]
        beginnings = await consumer.beginning_offsets(missing) if missing else {}
        # From here on no await: every seek is done before the event loop runs anything else.
        held = consumer.assignment()  # a partition revoked meanwhile cannot be positioned
        for tp in partitions:
            kafka_tp = KafkaTopicPartition(*tp)
            if kafka_tp in held:
                offset = stored[tp] if tp in stored else beginnings[kafka_tp]
                self._positioned[tp] = offset
                consumer.seek(kafka_tp, offset)

    async def partitions_assigned(
        self, assigned: list[TopicPartition], consumer: AIOKafkaConsumer
    ) -> None:
        # aiokafka starts fetching from Kafka's committed offsets as soon as the group
        # assigns; nothing may be returned before we are at PostgreSQL's offsets.
        kafka_tps = [KafkaTopicPartition(*tp) for tp in assigned]
        consumer.pause(*kafka_tps)
        stored = await self._load_offsets(assigned)
        await self._seek(consumer, assigned, stored)
        if not self.is_current(consumer):  # replaced while loading: the new one has its own
            return
        self._owned = set(assigned)
        self._on_assigned({tp: stored.get(tp) for tp in assigned})
        consumer.resume(*kafka_tps)
        self._mirror_soon()  # what a rebalance cut short, for partitions that stay ours
        log.info("partitions_assigned", partitions=_names(assigned))

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("partitions_revoked", partitions=_names(revoked))
        self._owned -= revoked
        await self._on_revoked(revoked)
        await self.flush_commits()  # while the group still counts us as their owner


def _names(partitions: Collection[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)

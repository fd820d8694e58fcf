"""The Kafka side of the worker: group membership, seeking to PostgreSQL's offsets, fetching.

Contract: offsets are never committed automatically, and aiokafka never resets a
position by itself. On assignment each partition is positioned at the next_offset
stored in PostgreSQL (the source of truth), or at the beginning when none is stored,
unless the log no longer holds it (``worker.consume.starts``: recorded as a gap). A
fetch that finds a position out of the log (the broker's out-of-range answer, or a high
watermark below it) goes through the same. ``commit`` afterwards only notes what
PostgreSQL already holds (``worker.consume.mirror`` tells Kafka, for lag tools).
``fetch`` does not block longer than asked (aiokafka's would wait for the end of a
rebalance, however long), except to replace the consumer or to find a record batch it
cannot decode (``worker.consume.undecodable``): that partition is held, the others go on.

A consumer out of its group for too long (aiokafka can lose its membership and never
rejoin) is replaced when the watchdog asks: what it held is revoked as in a rebalance,
and a new consumer joins, whose assignment seeks to PostgreSQL's offsets again. This is
done in ``fetch``, on the loop's own task: no fetch runs on a consumer being stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError

from worker.consume.kafka_config import new_consumer as _new_consumer
from worker.consume.membership import fetch_states, is_broken, is_member, is_rejoining
from worker.consume.mirror import COMMIT_TIMEOUT_S, CommitMirror
from worker.consume.rebalance import Rebalance
from worker.consume.starts import Starts
from worker.consume.undecodable import UNDECODABLE, hold_bad_batch
from worker.records import RawRecord, TopicPartition, raw_records
from worker.settings import Settings

log = structlog.get_logger(__name__)
STOP_TIMEOUT_S = 10.0  # a consumer stuck out of its group may never finish stopping
FETCH_OVERRUN_S = 0.1  # past the fetch's own timeout: aiokafka is waiting for a rebalance
HELD_POLL_S = 2.0  # how often held partitions are checked for an operator's new position

OnAssigned = Callable[[dict[TopicPartition, int | None]], None]
OnRevoked = Callable[[set[TopicPartition]], Awaitable[None]]


class KafkaSource:
    """One consumer in the group, over the action and audit topics."""

    def __init__(
        self,
        settings: Settings,
        *,
        starts: Starts,
        on_assigned: OnAssigned,
        on_revoked: OnRevoked,
    ) -> None:
        self._settings = settings
        self._topics = (settings.kafka_action_topic, settings.kafka_audit_topic)
        self._starts = starts
        self._blocked = starts.blocked
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._consumer = _new_consumer(settings)
        self._started = False
        self._closed = False
        self._replace = False  # asked for a new consumer, made at the next fetch
        self._owned: set[TopicPartition] = set()  # assigned by the group, not revoked since
        self._positioned: dict[TopicPartition, int] = {}  # last seeks, for the stall watch
        self._sought: dict[KafkaTopicPartition, int] = {}  # seeks during the fetch under way
        self._mirror = CommitMirror(lambda: self._consumer)
        self._held_polled = 0.0

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe(self._topics, listener=Rebalance(self, self._consumer))
        self._started = True

    async def stop(self) -> None:
        """Tell Kafka the last offsets, leave the group, close, each within its timeout; later
        notes stay unmirrored (a write finishing during shutdown: its commit would be retried)."""
        await self.flush_commits()
        self._closed = self._mirror.closed = True
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
        """The partitions being consumed: assigned, and not held for an operator."""
        held = self._blocked.held()
        return {TopicPartition(*tp) for tp in self._consumer.assignment()} - held.keys()

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
        if self._blocked.held():
            await self._poll_held()
        if self._starts.unconfirmed:
            await self._confirm_logs()
        return await self._fetch(timeout_ms, max_records)

    async def _fetch(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        before = {tp: position for tp, (position, _) in fetch_states(self._consumer).items()}
        self._sought = {}
        try:
            # A rebalance that begins during the fetch would hold it until it ends.
            async with asyncio.timeout(timeout_ms / 1000 + FETCH_OVERRUN_S):
                batches = await self._consumer.getmany(
                    timeout_ms=timeout_ms, max_records=max_records
                )
        except TimeoutError:
            return []
        except OffsetOutOfRangeError as exc:  # Kafka's answer; no record was returned
            await self._refit([TopicPartition(*tp) for tp in exc.args[0]], None)
            return []
        except NoOffsetForPartitionError:
            return []  # asked before the assignment's seek: every partition is sought
        except UNDECODABLE as exc:
            log.warning("undecodable_batch", error=type(exc).__name__)
            # A rebalance during the call sought partitions: they start there, not at before.
            before |= self._sought
            found = await hold_bad_batch(self._consumer, self._starts, before, max_records)
            return raw_records(found)
        except KafkaError as exc:
            if not is_broken(self._consumer):
                raise
            # aiokafka's own tasks died (seen: uvloop's RuntimeError on a connection the
            # broker closed); a new consumer is exact: it seeks to PostgreSQL's offsets.
            log.warning("consumer_broken", error=type(exc).__name__)
            self._replace = True
            return []
        await self._refit_beyond_end()
        return raw_records([m for messages in batches.values() for m in messages])

    async def _refit_beyond_end(self) -> None:
        """Past the end a fetch reported (a broker not answering out-of-range: Tansu)."""
        if beyond := self._starts.beyond_end(self._consumer):
            await self._refit([TopicPartition(*tp) for tp in beyond], beyond)

    async def _refit(
        self, partitions: list[TopicPartition], ends: dict[KafkaTopicPartition, int] | None
    ) -> None:
        if ends is None:  # the broker said out of range: its ListOffsets is then the judge
            ends = await self._consumer.end_offsets([KafkaTopicPartition(*tp) for tp in partitions])
        log_ends = {TopicPartition(*tp): end for tp, end in ends.items()}
        await self._position(self._consumer, partitions, log_ends)

    async def _confirm_logs(self) -> None:
        """Partitions assigned past their log start whose log turns out to be another one
        (``worker.consume.identity``) resume from its start, with a gap recorded."""
        replaced = await self._starts.confirm_logs(self._consumer)
        if replaced:
            await self._position(self._consumer, replaced, replaced=replaced)
            self.resume()

    async def _poll_held(self) -> None:
        """Every few seconds: held partitions an operator moved (``log-ingest offsets set``)
        are released and resume from the new position."""
        now = asyncio.get_running_loop().time()
        if now - self._held_polled < HELD_POLL_S:
            return
        self._held_polled = now
        self._blocked.remind()
        released = await self._starts.acted_on()
        if released:
            await self._position(self._consumer, released)
            self.resume()

    async def _replace_consumer(self) -> None:
        """Revoke what the old consumer held (as a rebalance would), stop it, join anew."""
        self._replace = False
        old, owned = self._consumer, self._owned
        # From here on the old consumer's rebalances are ignored: it is not current.
        self._consumer, self._started, self._owned = _new_consumer(self._settings), False, set()
        await self._mirror.stop()  # what it did not tell Kafka, the new consumer will
        self._starts.forget(self._blocked.held())
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
        """Resume every partition but those held for an operator or not confirmed yet."""
        unconfirmed = self._starts.unconfirmed
        resumed = (KafkaTopicPartition(*tp) for tp in self.assignment() if tp not in unconfirmed)
        self._consumer.resume(*resumed)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Note PostgreSQL's new offsets; the background mirror tells Kafka (for lag tools)."""
        self._mirror.note(offsets)

    async def flush_commits(self, within_s: float = COMMIT_TIMEOUT_S) -> None:
        await self._mirror.flush(within_s)

    async def reload(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        """Position the partitions at PostgreSQL's offsets again (after being fenced); the
        stored offsets of those not held, for the pipeline (which has just called us)."""
        starts = await self._starts.position(self._consumer, partitions)
        self._note_seeks(starts)
        return {tp: stored for tp, (_, stored) in starts.items() if stored is not None}

    async def _position(
        self,
        consumer: AIOKafkaConsumer,
        partitions: Collection[TopicPartition],
        log_ends: dict[TopicPartition, int] | None = None,
        **how: Any,
    ) -> None:
        """Seek where ``Starts`` says and tell the pipeline, with no await in between."""
        starts = await self._starts.position(consumer, partitions, log_ends, **how)
        if not self.is_current(consumer):  # replaced meanwhile: the new one has its own
            return
        self._note_seeks(starts)
        self._on_assigned({tp: stored for tp, (_, stored) in starts.items()})

    def _note_seeks(self, starts: dict[TopicPartition, tuple[int, int | None]]) -> None:
        self._positioned.update({tp: at for tp, (at, _) in starts.items()})
        self._sought.update({KafkaTopicPartition(*tp): at for tp, (at, _) in starts.items()})

    async def partitions_assigned(
        self, assigned: list[TopicPartition], consumer: AIOKafkaConsumer
    ) -> None:
        # aiokafka starts fetching from Kafka's committed offsets as soon as the group
        # assigns; nothing may be returned before we are at PostgreSQL's offsets.
        kafka_tps = [KafkaTopicPartition(*tp) for tp in assigned]
        consumer.pause(*kafka_tps)
        await self._position(consumer, assigned, confirm=True)
        if not self.is_current(consumer):
            return
        self._owned = set(assigned)
        self.resume()
        self._mirror.soon()  # what a rebalance cut short, for partitions that stay ours
        log.info("partitions_assigned", partitions=_names(assigned))

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("partitions_revoked", partitions=_names(revoked))
        self._owned -= revoked
        self._starts.forget(revoked)
        await self._on_revoked(revoked)
        await self.flush_commits()  # while the group still counts us as their owner


def _names(partitions: Collection[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)

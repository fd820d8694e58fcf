"""Telling Kafka the offsets PostgreSQL already holds, in the background, for lag tools only.

A write never waits for Kafka: a broker that is slow or gone must not hold events
back from PostgreSQL (a commit can hang for as long as the coordinator is unreachable).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import structlog
from aiokafka import AIOKafkaConsumer, OffsetAndMetadata
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.errors import KafkaError

from worker.records import TopicPartition
from worker.service.supervisor import watch

log = structlog.get_logger(__name__)
COMMIT_TIMEOUT_S = 5.0  # one commit to Kafka; a normal one takes milliseconds
COMMIT_RETRY_S = 1.0  # pause before telling Kafka again after a failed commit


class CommitMirror:
    """Commits the latest noted offset of each partition, one commit at a time."""

    def __init__(self, consumer: Callable[[], AIOKafkaConsumer]) -> None:
        self._consumer = consumer  # the current one: it is replaced when stuck
        self._unmirrored: dict[TopicPartition, int] = {}  # noted, not yet told to Kafka
        self._task: asyncio.Task[None] | None = None
        self.closed = False  # later notes stay unmirrored

    def note(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._unmirrored.update(offsets)
        self.soon()

    def soon(self) -> None:
        """Start telling Kafka what is noted, unless that is under way."""
        if self.closed or not self._unmirrored:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._mirror())
            watch(self._task, "kafka_commit_mirror")  # it never raises, unless a bug

    async def flush(self, within_s: float = COMMIT_TIMEOUT_S) -> None:
        """Give the mirror ``within_s`` to tell Kafka what is noted, then stop it."""
        self.soon()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=within_s)
        await self.stop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})  # done, so the next note starts a mirror

    async def _mirror(self) -> None:
        """Commit the latest noted offsets until none are left; never raises.

        An offset is forgotten only once Kafka has it (or its partition is no longer
        ours), so that a commit cut short by ``flush`` is made again later.
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
        consumer = self._consumer()
        owned = consumer.assignment()
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
                await consumer.commit(to_commit)
        except (KafkaError, OSError, RuntimeError) as exc:
            # Best effort (lag tools only); uvloop raises RuntimeError on a closed connection.
            log.info("kafka_commit_skipped", error=type(exc).__name__)
            return False
        return True

"""The consumer's rebalance listener: passes the group's decisions on to the Kafka source.

aiokafka logs an exception raised in a rebalance callback and goes on, leaving the
partitions it was handling paused or unpositioned: a worker that looks alive and
consumes nothing. The listener hands such an error to the supervisor instead, which
ends the process (the restart seeks to PostgreSQL's offsets again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

from worker.records import TopicPartition
from worker.service.supervisor import report

if TYPE_CHECKING:
    from worker.consume.consumer import KafkaSource

log = structlog.get_logger(__name__)


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """One consumer's rebalances, passed on while it is the source's consumer."""

    def __init__(self, source: KafkaSource, consumer: AIOKafkaConsumer) -> None:
        self._source = source
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if not self._source.is_current(self._consumer):
            return
        try:
            await self._source.partitions_revoked({TopicPartition(*tp) for tp in revoked})
        except Exception as exc:  # any error: aiokafka would swallow it
            _fatal("partitions_revoked", exc)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if not self._source.is_current(self._consumer):
            return
        try:
            await self._source.partitions_assigned(
                [TopicPartition(*tp) for tp in assigned], self._consumer
            )
        except Exception as exc:  # any error: aiokafka would swallow it
            _fatal("partitions_assigned", exc)


def _fatal(callback: str, exc: Exception) -> None:
    """The supervisor logs and stops; with none (a bare source), log here and re-raise."""
    if not report(f"rebalance_{callback}", exc):
        log.exception("rebalance_callback_failed", callback=callback)
        raise exc

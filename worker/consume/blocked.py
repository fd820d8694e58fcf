"""Partitions held back for an operator: a batch that cannot be decoded, or a position that
does not fit the log under ``OFFSET_RESET_POLICY=fail``.

A held partition stays paused; the others go on. While held it is reported: a readiness
reason naming it (``partition_blocked`` / ``offset_out_of_range``, with topic, partition and
offset), the gauge ``log_ingest_partition_blocked``, and an error log line at most once a
minute. ``log-ingest offsets set`` releases it: it records an operator gap, which the owner
notices by the gap's id (``worker.write.gaps``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import structlog

from worker.records import TopicPartition
from worker.service.health import Readiness
from worker.service.metrics import Metrics

log = structlog.get_logger(__name__)
REMIND_EVERY_S = 60.0


class Hold(NamedTuple):
    reason: str  # a Readiness reason
    offset: int  # where the partition stands: the batch that failed, or the stored position
    detail: str  # what failed, for the log (never a payload)
    gap_mark: int  # the partition's latest gap id when held: a newer one releases it


class BlockedPartitions:
    def __init__(
        self, readiness: Readiness, metrics: Metrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._readiness = readiness
        self._metrics = metrics
        self._clock = clock
        self._holds: dict[TopicPartition, Hold] = {}
        self._reminded: dict[TopicPartition, float] = {}

    def hold(self, tp: TopicPartition, hold: Hold) -> None:
        self._holds[tp] = hold
        self._reminded.pop(tp, None)
        self._metrics.partition_blocked.labels(tp.topic, str(tp.partition), hold.reason).set(1)
        self._report()
        self.remind()

    def release(self, tp: TopicPartition) -> None:
        hold = self._holds.pop(tp, None)
        if hold is None:
            return
        self._reminded.pop(tp, None)
        self._metrics.partition_blocked.labels(tp.topic, str(tp.partition), hold.reason).set(0)
        self._report()
        log.info("partition_released", topic=tp.topic, partition=tp.partition)

    def held(self) -> dict[TopicPartition, Hold]:
        return dict(self._holds)

    def remind(self) -> None:
        """An error line per held partition, at most once a minute each."""
        now = self._clock()
        for tp, hold in self._holds.items():
            if now - self._reminded.get(tp, -REMIND_EVERY_S) >= REMIND_EVERY_S:
                self._reminded[tp] = now
                log.error(
                    hold.reason,
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=hold.offset,
                    detail=hold.detail,
                    remedy="log-ingest offsets set --topic T --partition P --offset N",
                )

    def _report(self) -> None:
        for reason in (Readiness.PARTITION_BLOCKED, Readiness.OFFSET_OUT_OF_RANGE):
            items = [
                f"{tp.topic}[{tp.partition}]@{hold.offset}"
                for tp, hold in self._holds.items()
                if hold.reason == reason
            ]
            self._readiness.detail(reason, items)

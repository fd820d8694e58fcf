"""Where a partition resumes (``Starts``), on a stand-in consumer and a ledger in memory."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition as KafkaTopicPartition

from tests.unit.consume.standins import MemoryLedger, memory_starts, subscription_state
from worker.consume.starts import misfit
from worker.errors import PartitionsFencedError
from worker.records import TopicPartition
from worker.service.health import Readiness
from worker.write.gaps import Gap, GapKind

TP = TopicPartition("audit-events", 0)
KTP = KafkaTopicPartition(*TP)


@pytest.mark.parametrize(
    ("stored", "end", "kind"),
    [(5, None, GapKind.RETENTION), (10, None, None), (40, 40, None), (41, 40, GapKind.LOG_RESET),
     (41, None, None)],
)  # fmt: skip
def test_misfit_compares_the_stored_offset_with_the_log(
    stored: int, end: int | None, kind: GapKind | None
) -> None:
    assert misfit(stored, 10, end) is kind


class Consumer:
    """What ``Starts`` uses of aiokafka's consumer: log starts, assignment, seeks."""

    def __init__(self, log_start: int) -> None:
        self.log_start = log_start
        self.sought: dict[KafkaTopicPartition, int] = {}
        self._subscription = subscription_state()

    async def beginning_offsets(
        self, partitions: Iterable[KafkaTopicPartition]
    ) -> dict[KafkaTopicPartition, int]:
        return {tp: self.log_start for tp in partitions}

    def assignment(self) -> set[KafkaTopicPartition]:
        return {KTP}

    def seek(self, tp: KafkaTopicPartition, offset: int) -> None:
        self.sought[tp] = offset


def stored_at(*offsets: int) -> Any:
    """load_offsets answering each offset in turn (the last one from then on)."""
    answers = list(offsets)

    async def load(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: answers.pop(0) if len(answers) > 1 else answers[0] for tp in partitions}

    return load


async def test_a_fitting_position_is_kept_and_nothing_is_recorded() -> None:
    starts, consumer = memory_starts(stored_at(12)), Consumer(log_start=10)
    assert await starts.position(consumer, [TP]) == {TP: (12, 12)}  # type: ignore[arg-type]
    assert consumer.sought == {KTP: 12}
    assert starts._ledger.gaps == []  # type: ignore[attr-defined]


async def test_no_stored_offset_starts_at_the_log_start_without_a_gap() -> None:
    async def none(_: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {}

    starts, consumer = memory_starts(none), Consumer(log_start=7)
    assert await starts.position(consumer, [TP]) == {TP: (7, None)}  # type: ignore[arg-type]
    assert starts._ledger.gaps == []  # type: ignore[attr-defined]


async def test_below_the_log_start_resumes_there_and_records_retention() -> None:
    starts, consumer = memory_starts(stored_at(3)), Consumer(log_start=10)
    assert await starts.position(consumer, [TP]) == {TP: (10, 10)}  # type: ignore[arg-type]
    assert starts._ledger.gaps == [Gap(TP, 3, 10, GapKind.RETENTION, 10, None)]  # type: ignore[attr-defined]
    assert starts._metrics.offset_gaps.labels("retention")._value.get() == 1


async def test_beyond_the_end_a_fetch_saw_resumes_at_the_start_and_records_a_log_reset() -> None:
    starts, consumer = memory_starts(stored_at(500)), Consumer(log_start=0)
    found = await starts.position(consumer, [TP], {TP: 40})  # type: ignore[arg-type]
    assert found == {TP: (0, 0)}
    assert consumer.sought == {KTP: 0}
    assert starts._ledger.gaps == [Gap(TP, 500, 0, GapKind.LOG_RESET, 0, 40)]  # type: ignore[attr-defined]


async def test_a_position_moved_by_another_replica_meanwhile_is_read_again() -> None:
    class FencedOnce(MemoryLedger):
        async def record(self, gap: Gap) -> None:
            if not self.gaps and gap.stored == 3:
                self.gaps.append(gap._replace(kind=GapKind.OPERATOR))  # someone else's
                raise PartitionsFencedError(frozenset({(TP.topic, TP.partition)}))
            await super().record(gap)

    starts, consumer = memory_starts(stored_at(3, 15)), Consumer(log_start=10)
    starts._ledger = FencedOnce()
    assert await starts.position(consumer, [TP]) == {TP: (15, 15)}  # type: ignore[arg-type]


async def test_policy_fail_holds_the_partition_until_a_newer_gap_releases_it() -> None:
    starts, consumer = memory_starts(stored_at(3), policy="fail"), Consumer(log_start=10)
    assert await starts.position(consumer, [TP]) == {}  # type: ignore[arg-type]
    readiness: Readiness = starts.blocked._readiness
    assert readiness.details == {Readiness.OFFSET_OUT_OF_RANGE: ["audit-events[0]@3"]}
    assert await starts.acted_on() == []
    starts._ledger.gaps.append(Gap(TP, 3, 10, GapKind.OPERATOR))  # type: ignore[attr-defined]
    assert await starts.acted_on() == [TP]
    assert readiness.details == {}
    assert Readiness.OFFSET_OUT_OF_RANGE not in readiness.reasons


def test_a_held_partition_is_logged_at_most_once_a_minute() -> None:
    from structlog.testing import capture_logs

    from worker.consume.blocked import BlockedPartitions, Hold
    from worker.service.metrics import Metrics

    now = SimpleNamespace(t=0.0)
    blocked = BlockedPartitions(Readiness(), Metrics(), clock=lambda: now.t)
    with capture_logs() as logs:
        blocked.hold(TP, Hold(Readiness.PARTITION_BLOCKED, 42, "CorruptRecordException", 0))
        now.t = 59.0
        blocked.remind()
        now.t = 60.0
        blocked.remind()
    assert [log["event"] for log in logs] == ["partition_blocked", "partition_blocked"]
    assert all(log["offset"] == 42 for log in logs)

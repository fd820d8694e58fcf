"""Stand-ins shared by the consumer's unit tests: a gap ledger in memory, and the part of
aiokafka's subscription state the source reads (positions, high watermarks)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from types import SimpleNamespace
from typing import Any

from worker.consume.blocked import BlockedPartitions
from worker.consume.starts import Starts
from worker.records import TopicPartition
from worker.service.health import Readiness
from worker.service.metrics import Metrics
from worker.write.gaps import Gap, Recall


class MemoryLedger:
    def __init__(self) -> None:
        self.gaps: list[Gap] = []

    async def record(self, gap: Gap) -> None:
        self.gaps.append(gap)

    async def recall(self, tp: TopicPartition, offset: int, value: bytes | None) -> Recall:
        return Recall(known=True, stored_at_ms=None)

    async def latest(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        ids = {gap.tp: number for number, gap in enumerate(self.gaps, 1)}
        return {tp: ids[tp] for tp in partitions if tp in ids}


def memory_starts(
    load_offsets: Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int]]],
    policy: str = "earliest",
) -> Starts:
    return Starts(
        load_offsets=load_offsets,
        ledger=MemoryLedger(),
        blocked=BlockedPartitions(Readiness(), Metrics()),
        metrics=Metrics(),
        policy=policy,
    )


def subscription_state(reassignment_in_progress: bool = False) -> SimpleNamespace:
    """aiokafka's ``consumer._subscription``, with an assignment of no positions."""
    states: dict[Any, SimpleNamespace] = {}

    def state_value(tp: Any) -> SimpleNamespace:
        return states.setdefault(tp, SimpleNamespace(_position=None, highwater=None))

    assignment = SimpleNamespace(tps=states.keys(), state_value=state_value)
    return SimpleNamespace(
        reassignment_in_progress=reassignment_in_progress,
        subscription=SimpleNamespace(assignment=assignment),
    )

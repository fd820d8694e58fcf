"""Batch building: decoded events of many partitions -> one ``Batch`` with its offset ranges.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping

from worker.records import (
    Accepted,
    ActionRow,
    Batch,
    Decoded,
    OffsetRange,
    Reject,
    TopicPartition,
)


def build_batch(decoded: list[Decoded], starts: Mapping[TopicPartition, int | None]) -> Batch:
    """Sort events into actions, audits and rejects; each partition moves from its start
    to one past the last offset seen. Partitions without a start are not ours: skipped."""
    batch = Batch()
    # Keyed by plain (topic, partition) tuples, equal to TopicPartition and cheaper to build.
    last: dict[tuple[str, int], int] = {}
    for item in decoded:
        record = item.record
        tp = (record.topic, record.partition)
        if tp not in starts:
            continue  # not ours (revoked meanwhile)
        start = starts[tp]  # type: ignore[index]  # a plain tuple equals its TopicPartition
        if start is not None and record.offset < start:
            continue  # from before the partition's position: already stored
        if record.offset > last.get(tp, -1):
            last[tp] = record.offset
        if isinstance(item, Reject):
            batch.rejects.append(item)
        elif isinstance(item.row, ActionRow):
            batch.actions.append(item)
        else:
            batch.audits.append(item)
    batch.offsets = {
        TopicPartition(*tp): OffsetRange(starts[tp], offset + 1)  # type: ignore[index]
        for tp, offset in last.items()
    }
    return batch


def without_partitions(batch: Batch, dropped: Collection[TopicPartition]) -> Batch:
    """The same batch minus everything of the given partitions."""
    gone = set(dropped)

    def keep(item: Accepted | Reject) -> bool:
        return TopicPartition(item.record.topic, item.record.partition) not in gone

    return Batch(
        actions=[item for item in batch.actions if keep(item)],
        audits=[item for item in batch.audits if keep(item)],
        rejects=[item for item in batch.rejects if keep(item)],
        offsets={tp: r for tp, r in batch.offsets.items() if tp not in gone},
    )


def split_by_partition(batch: Batch, parts: int) -> list[Batch]:
    """Up to ``parts`` batches over disjoint sets of partitions, balanced by event count.

    Each can be written in its own transaction on its own connection: the offsets'
    compare-and-set is per partition, and an action's events share a partition.
    """
    if parts <= 1 or len(batch.offsets) <= 1:
        return [batch]
    items: list[Accepted | Reject] = [*batch.actions, *batch.audits, *batch.rejects]
    sizes = Counter(TopicPartition(i.record.topic, i.record.partition) for i in items)
    groups: list[set[TopicPartition]] = [set() for _ in range(parts)]
    loads = [0] * parts
    for tp in sorted(batch.offsets, key=lambda tp: -sizes[tp]):
        lightest = loads.index(min(loads))
        groups[lightest].add(tp)
        loads[lightest] += sizes[tp]
    everything = set(batch.offsets)
    return [without_partitions(batch, everything - group) for group in groups if group]

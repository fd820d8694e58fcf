"""Batch building: decoded events of many partitions -> one ``Batch`` with its offset ranges.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from worker.lanes import lane_of
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


def split_into_lanes(batch: Batch, lanes: int) -> dict[int, Batch]:
    """The batch's partitions grouped by ``lane_of``: one part per lane that has any.

    Each part can be written in its own transaction: the offsets' compare-and-set is
    per partition, and an action's events share a partition.
    """
    groups: dict[int, set[TopicPartition]] = {}
    for tp in batch.offsets:
        groups.setdefault(lane_of(tp, lanes), set()).add(tp)
    if len(groups) <= 1:
        return dict.fromkeys(groups, batch)
    everything = set(batch.offsets)
    return {lane: without_partitions(batch, everything - group) for lane, group in groups.items()}

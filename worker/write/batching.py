"""Batch building: decoded events of many partitions -> one ``Batch`` with its offset ranges.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

from worker.records import (
    Accepted,
    ActionRow,
    Batch,
    Decoded,
    OffsetRange,
    Reject,
    TopicPartition,
)

T = TypeVar("T", Accepted, Reject)


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


def join(first: Batch, then: Batch) -> Batch:
    """One batch of two consecutive ones: ``then`` continues each partition where
    ``first`` ends, so a partition of both moves from ``first``'s start to ``then``'s next."""
    offsets = dict(first.offsets)
    for tp, later in then.offsets.items():
        earlier = offsets.get(tp)
        if earlier is not None and earlier.next != later.start:
            raise ValueError(f"{tp.topic}[{tp.partition}]: the batches are not consecutive")
        offsets[tp] = later if earlier is None else OffsetRange(earlier.start, later.next)
    return Batch(
        first.actions + then.actions,
        first.audits + then.audits,
        first.rejects + then.rejects,
        offsets,
    )


def split_into_lanes(
    batch: Batch, assign: Callable[[Mapping[TopicPartition, int]], Mapping[TopicPartition, int]]
) -> dict[int, Batch]:
    """The batch's partitions grouped by lane: one part per lane that has any.

    ``assign`` gives each partition its lane, knowing how many events it has here.
    Each part can be written in its own transaction: the offsets' compare-and-set is
    per partition, and an action's events share a partition.
    """
    actions = _by_partition(batch.actions)
    audits = _by_partition(batch.audits)
    rejects = _by_partition(batch.rejects)
    sizes = {
        tp: len(actions.get(tp, ())) + len(audits.get(tp, ())) + len(rejects.get(tp, ()))
        for tp in batch.offsets
    }
    lane_of = assign(sizes)
    if len(set(lane_of.values())) <= 1:
        return dict.fromkeys(lane_of.values(), batch)
    parts: dict[int, Batch] = {}
    for tp, offsets in batch.offsets.items():
        part = parts.setdefault(lane_of[tp], Batch())
        part.actions += actions.get(tp, ())
        part.audits += audits.get(tp, ())
        part.rejects += rejects.get(tp, ())
        part.offsets[tp] = offsets
    return parts


def _by_partition(items: list[T]) -> dict[tuple[str, int], list[T]]:
    # Keyed by plain (topic, partition) tuples, equal to TopicPartition and cheaper to build.
    grouped: dict[tuple[str, int], list[T]] = {}
    for item in items:
        record = item.record
        tp = (record.topic, record.partition)
        if (group := grouped.get(tp)) is None:
            group = grouped[tp] = []
        group.append(item)
    return grouped
